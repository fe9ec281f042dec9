"""Builds: React/TypeScript bundled with esbuild inside a fresh node sandbox.

`bundler.bundle(...)` streams BuildLog and Diagnostic events, then one BuildResult
(events.py); limits come from Settings (limits.py); `fingerprint.fingerprint(...)` keys a
stored output. The sandbox side is the image's build script (script.py says how it is run
and read)."""
