// Copies the browser bundles of the locked npm packages into static/vendor/, which Flask serves.
// Run by `npm run vendor` (the Makefile's install step and the Dockerfile); the folder is not in git.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const FILES = [
  "socket.io-client/dist/socket.io.esm.min.js",
  "socket.io-client/dist/socket.io.esm.min.js.map",
  "lightweight-charts/dist/lightweight-charts.standalone.production.mjs",
];

const vendor = join(here, "static", "vendor");
rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
for (const file of FILES) {
  copyFileSync(join(here, "node_modules", file), join(vendor, basename(file)));
  console.log(`static/vendor/${basename(file)}`);
}
