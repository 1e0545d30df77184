// vendor.mjs copies the ES modules the web client's MLS needs — ts-mls and
// the modules it imports, transitively — from node_modules into an
// output directory (web/static/vendor), rewriting every import of a
// package ("@hpke/core", "@noble/hashes/sha2.js") into a relative path,
// so a browser loads them as they are, from the same origin, under the
// strict Content-Security-Policy: no bundler, no build step at run time,
// no import map. Only modules reachable from ts-mls's entry point are
// copied; a dynamic import of a package that is not installed (the
// cipher suites Parley does not use) is left as it is and never runs.
//
// Usage: node vendor.mjs OUT_DIR (make web-vendor). The output is
// committed; a test (web/vendor_test.go) checks it is what this script
// makes from package-lock.json's versions.

import fs from "node:fs";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const out = path.resolve(process.argv[2] ?? "");
if (!process.argv[2]) {
  console.error("usage: node vendor.mjs OUT_DIR");
  process.exit(2);
}

// findPackage returns the directory of package name as Node would find it
// from a file in dir: the nearest node_modules/name upwards.
function findPackage(name, dir) {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, "node_modules", name);
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
    if (d === path.dirname(d) || d === here) return null;
  }
}

function exportTarget(entry) {
  if (typeof entry === "string") return entry;
  if (entry && typeof entry === "object") return exportTarget(entry.import ?? entry.default);
  return null;
}

// resolve returns the file a specifier names from file, or null.
function resolve(spec, file) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(file), spec);
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const dir = findPackage(name, path.dirname(file));
  if (!dir) return null;
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const sub = "." + spec.slice(name.length);
  let target = pkg.exports ? exportTarget(pkg.exports[sub]) : null;
  if (!target && pkg.exports) {
    for (const [pattern, value] of Object.entries(pkg.exports)) {
      const star = pattern.indexOf("*");
      if (star < 0) continue;
      const [pre, post] = [pattern.slice(0, star), pattern.slice(star + 1)];
      if (sub.startsWith(pre) && sub.endsWith(post)) {
        target = exportTarget(value)?.replace("*", sub.slice(pre.length, sub.length - post.length));
        break;
      }
    }
  }
  if (!target && sub === ".") target = pkg.module ?? pkg.main ?? "index.js";
  return target ? path.join(dir, target) : null;
}

// outPath is where a file of node_modules goes: OUT_DIR/<package
// path>, a nested package (node_modules/a/node_modules/b) under
// a/nested/b. go:embed leaves out names that start with "_" or ".", so
// such a name (noble's "_md.js") gets a "v" in front: imports are
// rewritten to the new names anyway.
function outPath(file) {
  const rel = file.slice(path.join(here, "node_modules").length + 1).split(path.sep + "node_modules" + path.sep).join(path.sep + "nested" + path.sep);
  return path.join(out, ...rel.split(path.sep).map((seg) => (/^[_.]/.test(seg) ? "v" + seg : seg)));
}

const importRe = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"']+)\2/g;
const seen = new Set();
const queue = [resolve("ts-mls", path.join(here, "entry.js"))];
fs.rmSync(out, { recursive: true, force: true });
while (queue.length) {
  const file = queue.pop();
  if (seen.has(file)) continue;
  seen.add(file);
  let src = fs.readFileSync(file, "utf8");
  src = src.replace(importRe, (all, head, quote, spec) => {
    const target = resolve(spec, file);
    if (!target || !fs.existsSync(target)) return all; // an optional suite's package
    queue.push(target);
    let rel = path.relative(path.dirname(outPath(file)), outPath(target)).split(path.sep).join("/");
    if (!rel.startsWith(".")) rel = "./" + rel;
    return head + quote + rel + quote;
  });
  // Source maps point into node_modules: drop the reference.
  src = src.replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n");
  fs.mkdirSync(path.dirname(outPath(file)), { recursive: true });
  fs.writeFileSync(outPath(file), src);
}
// The licences of what was copied, one per package.
function packageDirOf(file) {
  const i = file.lastIndexOf(path.sep + "node_modules" + path.sep) + "/node_modules/".length;
  const rest = file.slice(i).split(path.sep);
  return file.slice(0, i) + rest.slice(0, rest[0].startsWith("@") ? 2 : 1).join(path.sep);
}
for (const dir of new Set([...seen].map(packageDirOf))) {
  const lic = ["LICENSE", "LICENSE.md", "LICENSE.txt"].map((n) => path.join(dir, n)).find((p) => fs.existsSync(p));
  if (lic) fs.copyFileSync(lic, path.join(path.dirname(outPath(path.join(dir, "package.json"))), "LICENSE"));
}
console.log(`vendored ${seen.size} modules into ${path.relative(process.cwd(), out)}`);
