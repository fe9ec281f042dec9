// Type-checks the console (tsc --noEmit) and builds it into dist/ (index.html, app.js,
// app.css) with esbuild:
//   node clients/console/build.mjs            (from anywhere; needs `npm ci` and a built
//                                              @forge/client, i.e. clients/ts/dist)
// Envoy serves dist/ at /console/ (gateway/console.py).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const dist = join(here, "dist");

// esbuild strips types without checking them: tsc does (the tsconfig.json here).
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const check = spawnSync(process.execPath, [tsc, "--noEmit", "-p", here], { stdio: "inherit" });
if (check.status !== 0) {
  console.error("console: type errors (tsc), not built");
  process.exit(1);
}

await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(src, "main.ts")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
await Promise.all(["index.html", "app.css"].map((name) => copyFile(join(src, name), join(dist, name))));
console.log(`console: built ${dist}`);
