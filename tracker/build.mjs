// Builds src/leadheat.js into ../app/static/tracker.js (or --out PATH), minified,
// prints its sizes, and fails when the gzipped file is 5 KB or more.
import { build } from 'esbuild';
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const GZIP_LIMIT = 5120;
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const outfile = outAt >= 0 ? resolve(args[outAt + 1]) : resolve(here, '../app/static/tracker.js');
const { version } = JSON.parse(readFileSync(resolve(here, 'package.json'), 'utf8'));

mkdirSync(dirname(outfile), { recursive: true });
await build({
  entryPoints: [resolve(here, 'src/leadheat.js')],
  outfile,
  bundle: false,
  minify: true,
  target: 'es2017',
  charset: 'utf8',
  legalComments: 'none',
  banner: { js: `/*! leadheat.js ${version} */` },
  define: { __LH_VERSION__: JSON.stringify(version) },
  logLevel: 'warning',
});

const code = readFileSync(outfile);
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`${outfile}: ${code.length} bytes minified, ${gzipped} bytes gzipped (limit ${GZIP_LIMIT})`);
if (gzipped >= GZIP_LIMIT) {
  console.error(`tracker too big: ${gzipped} bytes gzipped, must stay under ${GZIP_LIMIT}`);
  process.exit(1);
}
