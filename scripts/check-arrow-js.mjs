// Reads an m2mix dataset with Arrow's JavaScript library, as a check that the
// files are plain Arrow IPC. m2mix compresses buffers with zstd; arrow-js
// (>= 21) decodes them once a zstd codec is registered (here fzstd).
//   npm install apache-arrow fzstd && node scripts/check-arrow-js.mjs data/avmnist/test.arrow
import { readFileSync } from "node:fs";
import { tableFromIPC, compressionRegistry, CompressionType } from "apache-arrow";
import { decompress } from "fzstd";

// Copy into a fresh buffer: typed-array views need 8-byte-aligned offsets.
compressionRegistry.set(CompressionType.ZSTD, { encode: null, decode: (b) => new Uint8Array(decompress(b)) });
const path = process.argv[2];
const table = tableFromIPC(readFileSync(path));
console.log(`${path}: ${table.numRows} rows`);
for (const f of table.schema.fields) console.log(`  ${f.name}: ${f.type}`);
const row = table.get(0).toJSON();
const label = table.getChild("label").get(0);
console.log(`  first row: label ${label}, ` + Object.keys(row).map((k) => {
  const v = row[k];
  return v && v.length !== undefined && typeof v !== "string" ? `${k}[${v.length}]` : `${k}=${v}`;
}).join(", "));
console.log(`  metadata keys: ${[...table.schema.metadata.keys()].slice(0, 6).join(", ")} ...`);
