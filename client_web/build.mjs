// Build the browser client into dist/ (served by the server at / and /app/).
//
//   node build.mjs            production build (minified, hashed names)
//
// Output: dist/index.html, dist/sw.js, dist/manifest.webmanifest,
// dist/app/* (scripts, styles, icons), dist/build-report.json (sizes).
// Fails when the JavaScript a phone may download exceeds the budget.

import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile, readdir, stat } from "node:fs/promises";
import { gzipSync, deflateSync, brotliCompressSync, constants as zlibConstants } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(ROOT, "dist");
const OUT = path.join(DIST, "app");
const BUDGET_GZIP = 150 * 1024;

// ------------------------------------------------------------------ icons

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** The icon: two overlapping discs (police blue, NGO green) on the brand colour. */
function iconPng(size, { maskable = false } = {}) {
  const bg = [0x17, 0x32, 0x4d];
  const blue = [0x4a, 0x90, 0xe2];
  const green = [0x3c, 0xc7, 0x7a];
  const white = [0xf4, 0xf7, 0xfa];
  const scale = maskable ? 0.7 : 0.86;
  const r = size * 0.22 * scale;
  const cy = size / 2;
  const c1 = size / 2 - r * 0.55;
  const c2 = size / 2 + r * 0.55;
  const corner = maskable ? 0 : size * 0.18;
  const raw = Buffer.alloc(size * (size * 4 + 1));
  const inRounded = (x, y) => {
    if (!corner) return true;
    const cx = Math.min(Math.max(x, corner), size - corner);
    const cyy = Math.min(Math.max(y, corner), size - corner);
    return (x - cx) ** 2 + (y - cyy) ** 2 <= corner ** 2;
  };
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const acc = [0, 0, 0, 0];
      for (const [dx, dy] of [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]) {
        const px = x + dx;
        const py = y + dy;
        if (!inRounded(px, py)) continue;
        const a = (px - c1) ** 2 + (py - cy) ** 2 <= r * r;
        const b = (px - c2) ** 2 + (py - cy) ** 2 <= r * r;
        const col = a && b ? white : a ? blue : b ? green : bg;
        acc[0] += col[0];
        acc[1] += col[1];
        acc[2] += col[2];
        acc[3] += 255;
      }
      const o = y * (size * 4 + 1) + 1 + x * 4;
      const n = acc[3] / 255 || 1;
      raw[o] = Math.round(acc[0] / n);
      raw[o + 1] = Math.round(acc[1] / n);
      raw[o + 2] = Math.round(acc[2] / n);
      raw[o + 3] = Math.round(acc[3] / 4);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<rect width="100" height="100" rx="18" fill="#17324d"/>
<circle cx="39.6" cy="50" r="18.9" fill="#4a90e2"/>
<circle cx="60.4" cy="50" r="18.9" fill="#3cc77a"/>
<path d="M50 34.4a18.9 18.9 0 0 1 0 31.2a18.9 18.9 0 0 1 0-31.2z" fill="#f4f7fa"/>
</svg>
`;

// ------------------------------------------------------------------ build

async function main() {
  const started = Date.now();
  await rm(DIST, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });

  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { app: "src/main.js", style: "src/styles.css" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: ["chrome109", "firefox115", "safari15.6", "edge109"],
    minify: true,
    sourcemap: "linked",
    legalComments: "eof",
    outdir: OUT,
    entryNames: "[name]-[hash]",
    chunkNames: "chunk-[hash]",
    assetNames: "asset-[hash]",
    loader: { ".png": "file", ".svg": "file" },
    define: { "process.env.NODE_ENV": '"production"' },
    metafile: true,
    logLevel: "warning",
  });

  const outputs = result.metafile.outputs;
  const rel = (p) => "/" + path.relative(DIST, path.join(ROOT, p)).split(path.sep).join("/");
  const entryJs = Object.keys(outputs).find((p) => outputs[p].entryPoint === "src/main.js");
  const entryCss = Object.keys(outputs).find((p) => outputs[p].entryPoint === "src/styles.css" && p.endsWith(".css"));
  if (!entryJs || !entryCss) throw new Error("entry outputs not found");

  // Static imports of the entry: preloaded with the shell.
  const initial = new Set([entryJs]);
  const walk = (p) => {
    for (const imp of outputs[p].imports || []) {
      if (imp.kind === "import-statement" && !initial.has(imp.path)) {
        initial.add(imp.path);
        walk(imp.path);
      }
    }
  };
  walk(entryJs);

  // Icons and manifest.
  await writeFile(path.join(OUT, "icon.svg"), ICON_SVG);
  await writeFile(path.join(OUT, "icon-192.png"), iconPng(192));
  await writeFile(path.join(OUT, "icon-512.png"), iconPng(512));
  await writeFile(path.join(OUT, "icon-maskable-512.png"), iconPng(512, { maskable: true }));
  const manifest = {
    name: "Liaison",
    short_name: "Liaison",
    description: "Joint incident coordination for police dispatch and NGO responders",
    id: "/",
    start_url: "/",
    scope: "/",
    display: "standalone",
    orientation: "any",
    background_color: "#f4f6f8",
    theme_color: "#17324d",
    icons: [
      { src: "/app/icon-192.png", sizes: "192x192", type: "image/png", purpose: "any" },
      { src: "/app/icon-512.png", sizes: "512x512", type: "image/png", purpose: "any" },
      { src: "/app/icon-maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
      { src: "/app/icon.svg", sizes: "any", type: "image/svg+xml", purpose: "any" },
    ],
  };
  await writeFile(path.join(DIST, "manifest.webmanifest"), JSON.stringify(manifest, null, 2) + "\n");

  // index.html
  const preloads = [...initial]
    .filter((p) => p !== entryJs)
    .map((p) => `<link rel="modulepreload" href="${rel(p)}">`)
    .join("\n");
  let html = await readFile(path.join(ROOT, "src/index.html"), "utf8");
  html = html
    .replace("__CSS__", rel(entryCss))
    .replace("__JS__", rel(entryJs))
    .replace("__PRELOADS__", preloads);
  await writeFile(path.join(DIST, "index.html"), html);

  // Service worker with the precache list (everything but source maps).
  const files = (await readdir(OUT)).filter((f) => !f.endsWith(".map")).sort();
  // Precompressed siblings: the server sends x.js.br or x.js.gz when the browser accepts them.
  for (const f of files) {
    if (!/\.(js|css|svg|json)$/.test(f)) continue;
    const data = await readFile(path.join(OUT, f));
    await writeFile(path.join(OUT, f + ".gz"), gzipSync(data, { level: 9 }));
    await writeFile(
      path.join(OUT, f + ".br"),
      brotliCompressSync(data, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11 } }),
    );
  }
  const precache = ["/", "/manifest.webmanifest", ...files.map((f) => `/app/${f}`)];
  const version = createHash("sha256").update(precache.join("\n")).update(html).digest("hex").slice(0, 12);
  const sw = (await readFile(path.join(ROOT, "src/sw.js"), "utf8"))
    .replace("__VERSION__", version)
    .replace("__PRECACHE__", JSON.stringify(precache));
  await writeFile(path.join(DIST, "sw.js"), sw);

  // Sizes: what a phone downloads.
  const report = { version, files: {}, js: {} };
  let initialGz = 0;
  let allGz = 0;
  let allRaw = 0;
  let allBr = 0;
  for (const f of files) {
    const full = path.join(OUT, f);
    const data = await readFile(full);
    const gz = gzipSync(data, { level: 9 }).length;
    const br = /\.(js|css|svg|json)$/.test(f) ? (await stat(full + ".br")).size : null;
    report.files[`/app/${f}`] = { bytes: data.length, gzip: gz, brotli: br };
    if (f.endsWith(".js")) {
      allGz += gz;
      allBr += br;
      allRaw += data.length;
      if ([...initial].some((p) => p.endsWith("/" + f))) initialGz += gz;
    }
  }
  const htmlGz = gzipSync(html).length;
  const cssGz = report.files[rel(entryCss)].gzip;
  report.js = {
    initial_gzip: initialGz,
    all_gzip: allGz,
    all_bytes: allRaw,
    all_brotli: allBr,
    budget_gzip: BUDGET_GZIP,
  };
  report.shell = { html_gzip: htmlGz, css_gzip: cssGz };
  await writeFile(path.join(DIST, "build-report.json"), JSON.stringify(report, null, 2) + "\n");
  const kb = (n) => (n / 1024).toFixed(1) + " KB";
  console.log(
    `client_web built in ${Date.now() - started} ms: JS ${kb(initialGz)} gzipped at start, ` +
      `${kb(allGz)} gzipped in all (${kb(allBr)} brotli, ${kb(allRaw)} raw; budget ${kb(BUDGET_GZIP)} gzipped), ` +
      `CSS ${kb(cssGz)} gzipped`,
  );
  if (allGz > BUDGET_GZIP) {
    console.error(`the JavaScript a phone may download is ${kb(allGz)} gzipped, over the ${kb(BUDGET_GZIP)} budget`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
