// Writes ../golden/train_merges.json: the merges that the Hugging Face BpeTrainer (the
// Node binding's default trainer: no vocabulary limit that this corpus reaches, every
// pair seen at least once merged) learns with a ByteLevel pre-tokenizer
// (add_prefix_space false) from the strings of ../corpus.jsonl, one per line in a file,
// the way TestTrainMatchesLibrary feeds TrainBPE. The test compares the count, a SHA-256
// of the merges joined by "\n", and the first merges in full.
// Run after gen.mjs's npm install: node model/tokenizer/testdata/gen/train.mjs
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');
const cache = process.env.ROE_CACHE || path.join(repo, '.cache');
const require = createRequire(path.join(cache, 'npm', 'node_modules', 'x.js'));
const { Tokenizer, BPE, byteLevelPreTokenizer } = require('tokenizers');

const corpus = fs.readFileSync(path.resolve(here, '../corpus.jsonl'), 'utf8')
  .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'roe-train-'));
const file = path.join(tmp, 'corpus.txt');
fs.writeFileSync(file, corpus.join('\n') + '\n');

const tk = new Tokenizer(BPE.empty());
tk.setPreTokenizer(byteLevelPreTokenizer(false, true));
tk.train([file]);
const saved = path.join(tmp, 'tokenizer.json');
tk.save(saved, false);
const merges = JSON.parse(fs.readFileSync(saved, 'utf8')).model.merges
  .map((m) => (Array.isArray(m) ? m.join(' ') : m));
fs.rmSync(tmp, { recursive: true });

const out = path.resolve(here, '../golden/train_merges.json');
fs.writeFileSync(out, JSON.stringify({
  count: merges.length,
  sha256: crypto.createHash('sha256').update(merges.join('\n')).digest('hex'),
  first: merges.slice(0, 100),
}, null, 1) + '\n');
console.log(`train: ${merges.length} merges -> ${out}`);
