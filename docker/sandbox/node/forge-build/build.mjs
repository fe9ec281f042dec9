// Bundles a React/TypeScript project with esbuild, for a browser, inside the node sandbox.
//
//   node /opt/forge-build/build.mjs --root DIR --out DIR [--entry PATH]
//
// Writes one JSON object per line on stdout:
//   {"type":"log","message":…}
//   {"type":"diagnostic","severity":"error"|"warning","file":…,"line":…,"column":…,"message":…}
//       file relative to --root ("" when the message has no place); line and column 1-based
//   {"type":"result","status":"succeeded"|"failed","entry":…,"synthesized_entry":bool,
//    "outputs":[{"path":…,"bytes":…}],"duration_ms":…}          always the last line
// Exit status: 0 succeeded, 1 the build failed, 2 bad arguments.
//
// Imports of "react", "react-dom" … resolve to the packages installed next to this script
// (nodePaths): the sandbox has no network. Node 18 compatible (Debian bookworm's nodejs).

import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = path.join(HERE, "node_modules");
const ENTRY_NAMES = [
  "index.tsx", "index.ts", "index.jsx", "index.js",
  "main.tsx", "main.ts", "main.jsx", "main.js",
];
const ENTRY_CANDIDATES = ENTRY_NAMES.flatMap((name) => [name, `src/${name}`]);
const SCRIPT = /\.(tsx|ts|jsx|js|mjs|cjs|mts|cts)$/;
const SYNTHESIZED = "<forge entry>";
const ASSETS = [".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".ico",
  ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp3", ".mp4", ".webm", ".wasm"];
const MAX_MESSAGES = 100;

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function log(message) {
  emit({ type: "log", message });
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!["--root", "--out", "--entry"].includes(key) || value === undefined) {
      throw new Error(`usage: build.mjs --root DIR --out DIR [--entry PATH] (at ${key})`);
    }
    args[key.slice(2)] = value;
  }
  if (!args.root || !args.out) throw new Error("--root and --out are required");
  return args;
}

async function listFiles(root, dir = "") {
  const found = [];
  for (const item of await fs.readdir(path.join(root, dir), { withFileTypes: true })) {
    const relative = dir ? `${dir}/${item.name}` : item.name;
    if (item.isDirectory()) {
      if (item.name !== "node_modules") found.push(...(await listFiles(root, relative)));
    } else if (item.isFile()) {
      found.push(relative);
    }
  }
  return found.sort();
}

// The file's place relative to the project root, for diagnostics.
function relativeFile(root, file) {
  if (!file) return "";
  if (file === SYNTHESIZED) return file;
  const absolute = path.isAbsolute(file) ? file : path.join(root, file);
  const relative = path.relative(root, absolute);
  return relative.startsWith("..") ? file : relative.split(path.sep).join("/");
}

function diagnostic(root, severity, message) {
  const where = message.location;
  let text = message.text;
  for (const note of message.notes || []) {
    // esbuild's advice to mark a missing package external does not apply here
    if (note.text && !note.text.startsWith("You can mark the path")) text += `\n${note.text}`;
  }
  emit({
    type: "diagnostic",
    severity,
    file: where ? relativeFile(root, where.file) : "",
    line: where ? where.line : 0,
    column: where ? where.column + 1 : 0,
    message: text,
  });
}

// Does this module have a default export? Asked of esbuild, which parses it as the build will.
async function hasDefaultExport(root, file) {
  try {
    const result = await esbuild.build({
      entryPoints: [path.join(root, file)],
      absWorkingDir: root,
      bundle: false,
      write: false,
      format: "esm",
      jsx: "automatic",
      loader: { ".js": "jsx" },
      metafile: true,
      logLevel: "silent",
      outdir: "/nonexistent",
    });
    return Object.values(result.metafile.outputs).some((out) => out.exports.includes("default"));
  } catch {
    return false; // unparsable: the real build reports why
  }
}

// The entry point: the one asked for, a conventional index/main file, or, for a project of
// one script, that script (rendered into #root when it default-exports a component).
async function chooseEntry(root, asked) {
  const files = await listFiles(root);
  if (asked) {
    if (!files.includes(asked)) throw new EntryError(`the entry point ${asked} is not in the project`);
    return { entry: asked, synthesized: false };
  }
  const conventional = ENTRY_CANDIDATES.find((name) => files.includes(name));
  if (conventional) return { entry: conventional, synthesized: false };
  const scripts = files.filter((name) => SCRIPT.test(name) && !name.endsWith(".d.ts"));
  if (scripts.length !== 1) {
    throw new EntryError(
      scripts.length === 0
        ? "the project has no JavaScript or TypeScript file to bundle"
        : `no entry point: name one, or add one of ${ENTRY_NAMES.join(", ")} (or under src/)`,
    );
  }
  const only = scripts[0];
  if (!(await hasDefaultExport(root, only))) return { entry: only, synthesized: false };
  const source = [
    'import { createElement } from "react";',
    'import { createRoot } from "react-dom/client";',
    `import Component from ${JSON.stringify(`./${only}`)};`,
    'let container = document.getElementById("root");',
    "if (!container) {",
    '  container = document.createElement("div");',
    '  container.id = "root";',
    "  document.body.appendChild(container);",
    "}",
    "createRoot(container).render(createElement(Component));",
  ].join("\n");
  return { entry: only, synthesized: true, source };
}

class EntryError extends Error {}

async function outputsOf(out) {
  const outputs = [];
  for (const file of await listFiles(out)) {
    const { size } = await fs.stat(path.join(out, file));
    outputs.push({ path: file, bytes: size });
  }
  return outputs;
}

async function main() {
  const started = Date.now();
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const root = path.resolve(args.root);
  const out = path.resolve(args.out);
  const finish = (status, chosen, outputs) => {
    emit({
      type: "result",
      status,
      entry: chosen ? chosen.entry : "",
      synthesized_entry: chosen ? chosen.synthesized : false,
      outputs,
      duration_ms: Date.now() - started,
    });
    return status === "succeeded" ? 0 : 1;
  };

  let chosen;
  try {
    chosen = await chooseEntry(root, args.entry);
  } catch (error) {
    if (!(error instanceof EntryError)) throw error;
    diagnostic(root, "error", { text: error.message });
    return finish("failed", undefined, []);
  }
  log(`esbuild ${esbuild.version}: bundling ${chosen.entry}` +
    (chosen.synthesized ? " (its default export rendered into #root)" : ""));

  const loader = { ".js": "jsx", ".json": "json", ".txt": "text", ".css": "css" };
  for (const extension of ASSETS) loader[extension] = "file";
  const options = {
    absWorkingDir: root,
    bundle: true,
    platform: "browser",
    format: "iife",
    target: "es2020",
    jsx: "automatic",
    minify: true,
    charset: "utf8",
    loader,
    nodePaths: [NODE_MODULES],
    define: { "process.env.NODE_ENV": '"production"' },
    outdir: out,
    entryNames: "bundle",
    assetNames: "assets/[name]-[hash]",
    write: true,
    logLevel: "silent",
    logLimit: MAX_MESSAGES,
  };
  if (chosen.synthesized) {
    options.stdin = {
      contents: chosen.source,
      resolveDir: root,
      sourcefile: SYNTHESIZED,
      loader: "jsx",
    };
  } else {
    options.entryPoints = [path.join(root, chosen.entry)];
  }

  await fs.mkdir(out, { recursive: true });
  let result;
  try {
    result = await esbuild.build(options);
  } catch (error) {
    if (!Array.isArray(error.errors)) throw error;
    for (const message of error.errors) diagnostic(root, "error", message);
    for (const message of error.warnings || []) diagnostic(root, "warning", message);
    return finish("failed", chosen, []);
  }
  for (const message of result.warnings) diagnostic(root, "warning", message);
  const outputs = await outputsOf(out);
  for (const output of outputs) log(`wrote ${output.path} (${output.bytes} bytes)`);
  return finish("succeeded", chosen, outputs);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
    process.exitCode = 3;
  },
);
