// Precompresses the page's large assets for static servers that send a stored .br/.gz copy
// when the browser accepts it (nginx gzip_static/brotli_static, Caddy's precompressed, ...):
//   node scripts/compress-web.mjs web/www/pkg
// Writes FILE.br (brotli, quality 11) and FILE.gz (gzip -9) next to every .wasm and .js file.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dir = process.argv[2];
if (!dir || !fs.existsSync(dir)) {
  console.error(`usage: node scripts/compress-web.mjs DIR (got ${dir ?? 'nothing'})`);
  process.exit(2);
}
for (const name of fs.readdirSync(dir).filter((n) => /\.(wasm|js)$/.test(n))) {
  const file = path.join(dir, name);
  const bytes = fs.readFileSync(file);
  const br = zlib.brotliCompressSync(bytes, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  const gz = zlib.gzipSync(bytes, { level: 9 });
  fs.writeFileSync(`${file}.br`, br);
  fs.writeFileSync(`${file}.gz`, gz);
  console.error(`${name}: ${bytes.length} bytes, brotli ${br.length}, gzip ${gz.length}`);
}
