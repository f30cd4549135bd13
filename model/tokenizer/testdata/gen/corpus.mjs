// Builds ../corpus.jsonl: hand-written edge cases plus real lines from /work/shared/data.
// Deterministic; run once with `node corpus.mjs` (ROE_SHARED overrides the shared folder).
// The output is committed; regenerate the goldens (gen.mjs) after changing it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = process.env.ROE_SHARED || path.resolve(here, '../../../../../shared');
const out = path.resolve(here, '../corpus.jsonl');

const cases = [];
const add = (s) => { if (typeof s === 'string') cases.push(s); };

// --- hand-written edge cases -------------------------------------------------
[
  '', ' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', '\n\n\n', ' \n ', '\t\t  \n', 'a', 'A', '!', '.', '?',
  'Hello', 'Hello world', 'Hello world!', ' Hello world', 'Hello  world', 'Hello   world   ', 'Hello\tworld',
  'Hello\nworld', 'Hello\r\nworld', 'Hello \n world', 'hello\n\n\nworld', 'line1\nline2\n', '\nleading newline',
  'trailing spaces   ', '   leading spaces', 'multiple     spaces     inside', 'tabs\t\tand\tspaces \t mixed',
  'The quick brown fox jumps over the lazy dog.', 'THE QUICK BROWN FOX', 'tHe QuIcK bRoWn FoX',
  "I'm", "I'M", "you're", "YOU'RE", "they've", "we'll", "she'd", "it's", "IT'S", "don't", "DON'T", "can't",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "rock 'n' roll", "O'Neil's", "''quoted''", "'''",
  'Mr. Smith went to Washington, D.C., on Jan. 3rd.', 'e.g. i.e. etc.', 'U.S.A.', '...', '…', '!!!???', '?!',
  '0', '1', '12', '123', '1234', '12345', '123456789', '3.14159', '1,000,000', '1 000 000', '2024-01-15',
  '12:30:45', '+1 (555) 123-4567', '-42', '1e10', '0x1F', '0b1010', '100%', '$19.99', '€50', '£3', '¥1000',
  '31415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679',
  'a1b2c3', 'abc123def456', 'version 3.11.4', 'x = 42', '1st 2nd 3rd 4th', 'CO2 H2O', 'A4 paper',
  '٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '①②③', 'Ⅻ', '½ ¾ ⅓', '²³', '١٢٣ abc',
  'def foo(x):\n    return x * 2\n', 'if (a && b) { return c; }', 'for i in range(10):\n\tprint(i)',
  'const x = () => { console.log("hi"); };', '#include <stdio.h>\nint main(void) { return 0; }',
  'SELECT * FROM users WHERE id = 1;', '<html><body><p>Hello</p></body></html>', '{"key": "value", "n": [1, 2, 3]}',
  'a_b_c snake_case CamelCase kebab-case SCREAMING_CASE', 'https://example.com/path?query=1&x=y#frag',
  'user@example.com', 'C:\\Users\\name\\file.txt', '/usr/local/bin/go', '~/.bashrc', '$HOME && echo $PATH',
  '    indented code\n        more indented\n', '\t\tdeep tab indent', '// comment\n/* block */', '-- sql comment',
  '```go\nfunc main() {}\n```', '| a | b |\n|---|---|\n| 1 | 2 |', '- item 1\n- item 2\n* item 3',
  '# Heading\n\n## Sub', '**bold** _italic_ `code`', '[link](http://x.y)', '<!-- -->', '@@ -1,3 +1,4 @@',
  '😀', '😀😃😄', 'I ❤️ NY', '👍🏽', '👨‍👩‍👧‍👦', '👩🏽‍💻', '🏳️‍🌈', '🇫🇷🇯🇵', '🧑‍🤝‍🧑', 'emoji at end 🎉',
  '🎉 emoji at start', 'mixed😀text😃here', '✓ ✗ ★ ☆ ♥', '→ ← ↑ ↓', '∀x∈ℝ: x² ≥ 0', '∑ ∏ ∫ √ ∞ ≠ ≤ ≥',
  '你好', '你好，世界！', '我爱北京天安门。', '中文 English 混合 text', '日本語のテキストです。', 'ひらがな カタカナ',
  '한국어 텍스트', '안녕하세요 세계', '繁體中文測試', '𠀀𠀁𠀂', '〇一二三', '（全角括号）', 'ＡＢＣ１２３',
  'مرحبا بالعالم', 'العربية: هذا نص تجريبي.', 'שלום עולם', 'עברית עם ניקוד: שָׁלוֹם', 'नमस्ते दुनिया',
  'हिन्दी में लिखा पाठ।', 'বাংলা', 'தமிழ்', 'ไทย ภาษาไทย', 'Ελληνικά κείμενο', 'ΣΊΣΥΦΟΣ', 'Русский текст',
  'Привет, мир!', 'Українська мова', 'ქართული', 'Հայերեն', 'አማርኛ', 'Tiếng Việt có dấu', 'Türkçe İstanbul ıi',
  'Straße', 'STRASSE', 'ß ẞ', 'ﬁ ﬂ ligatures', 'Å Å', 'Ω Ω', 'K K', '™ ® ©', 'x⁰¹²', 'ℌℍ',
  'café', 'cafe\u0301', 'naïve', 'nai\u0308ve', 'résumé', 're\u0301sume\u0301', 'Ångström', 'A\u030angstro\u0308m',
  'Zoë Brontë', 'crème brûlée', 'cre\u0300me bru\u0302le\u0301e', 'São Paulo', 'Sa\u0303o Paulo', 'Việt Nam',
  'Vie\u0323\u0302t Nam', 'ñ n\u0303', 'ü u\u0308', 'ǅ ǆ Ǆ', 'ﬀ', '\u00a0non-breaking\u00a0space', 'zero\u200bwidth',
  'soft\u00adhyphen', 'em\u2003space', 'ideographic\u3000space', 'rtl\u200fmark', 'bom\ufeffhere', 'a\u2028b\u2029c',
  'control\u0001char', 'bell\u0007', 'null\u0000byte', 'del\u007f', 'esc\u001b[31mred\u001b[0m', 'vt\u000bff\u000c',
  '\u0085nextline', '\ufffd replacement', '\ud7ff', '\ue000 private use', 'a\u0300\u0301\u0302\u0303 stacked',
  '<|endoftext|>', 'Hello<|endoftext|>world', 'Hello <|endoftext|> world', '<|endoftext|><|endoftext|>',
  '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n', '<|im_start|>system\nYou are helpful.<|im_end|>',
  '<s>', '</s>', '<unk>', '<s>Hello</s>', '<s> Hello </s>', 'text<s>text', ' <s> ', '<s><s></s>', '<<s>>', '<s',
  's>', '< s>', '<S>', '<|begin_of_text|>', '<|end_of_text|>', '<|begin_of_text|>Hello<|end_of_text|>',
  '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>', '<|reserved_special_token_5|>', '<|pad|>',
  '<|endoftext', 'endoftext|>', '<|endoftext|', '<|ENDOFTEXT|>', '<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>',
  '<think>\nreasoning\n</think>\n\nanswer', '<tool_call>{"name": "f"}</tool_call>', '<0x41>', '<0x0A>', '▁', '▁▁hello',
  'Ġ', 'Ċ', 'ĠĠ', 'Ã©', 'âĢĻ', '\\n literal backslash n', '\\u00e9', '"double" \'single\' `back`', '“smart” ‘quotes’',
  '«guillemets»', '„German“', '— – -', '•◦▪', '¿Qué? ¡Sí!', '¡¡¡', 'a—b–c-d', '....', '. . .', ',,,', ';;;', ':::',
  '()()()', '[[[]]]', '{{{}}}', '<<<>>>', '///', '\\\\\\', '|||', '###', '$$$', '%%%', '^^^', '&&&', '***', '___',
  '+++', '===', '~~~', '```', '@@@', 'a!b@c#d$e%f^g&h*i(j)k', '!@#$%^&*()_+-=[]{}|;:\'",.<>?/`~',
  ' !', ' !!', '  !!', '\n!', '!\n', ' \n', '\n ', ' \t\n', 'a \n b', 'a  \n\n  b', 'word\n\n\n\nword', 'end.\n',
  'x' + ' '.repeat(17) + 'y', ' '.repeat(40), '\n'.repeat(12), '\t'.repeat(9), 'ab'.repeat(60), 'a'.repeat(300),
  '!'.repeat(50), '1'.repeat(64), 'é'.repeat(40), '中'.repeat(30), '😀'.repeat(20), '- '.repeat(30), '=-'.repeat(40),
  'supercalifragilisticexpialidocious', 'pneumonoultramicroscopicsilicovolcanoconiosis', 'antidisestablishmentarianism',
  'Llanfairpwllgwyngyllgogerychwyndrobwllllantysiliogogogoch', 'ThisIsAVeryLongCamelCaseIdentifierWithoutSpaces',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbcccccccccccccccccccc',
  'Ｈｅｌｌｏ　Ｗｏｒｌｄ', 'ｶﾀｶﾅ', '㍿ ㎏ ㎡', '℃ ℉', 'Ⅰ Ⅱ Ⅲ Ⅳ', '①②③④⑤', '⒈⒉⒊', '🄰🄱🄲', '𝐀𝐁𝐂 𝑎𝑏𝑐', '𝟘𝟙𝟚',
  'The year 1984 and 2001: A Space Odyssey', 'Call me at 555-0100 or 555-0199.', 'Pi is approximately 3.14159265358979',
  'Temperatures ranged from -40°C to +50°C.', 'He scored 99/100 (99%).', 'ISBN 978-3-16-148410-0',
  'She said, "It\'s fine," and left.', 'Wait—what?! No... really?', '(parenthetical) [bracketed] {braced}',
  'Q: What is 2+2?\nA: 4', 'User: hi\nAssistant: hello', 'Answer Choices: yes, no, maybe, Instance: Is it raining?',
  'Once upon a time, there was a little girl named Lily.', 'Lily and Ben went to the park. They played on the swings.',
  'She loved to play outside in the park', 'Tom said, "Let\'s go!" and they ran.',
].forEach(add);

// combinations: special-token strings embedded in varied text
const specials = ['<|endoftext|>', '<s>', '</s>', '<unk>', '<|begin_of_text|>', '<|im_end|>', '<|eot_id|>'];
const contexts = ['', ' ', 'a', 'Hello', ' world ', '\n', '你好', '123'];
for (let i = 0; i < specials.length; i++) {
  for (let j = 0; j < contexts.length; j += 2) {
    add(contexts[j] + specials[i] + contexts[(j + 1 + i) % contexts.length]);
  }
}
// NFD forms of accented words and long mixed scripts
for (const w of ['élève', 'Müller', 'Ça va', 'Ñandú', 'Ærøskøbing', 'Dvořák', 'Łódź', 'İzmir', 'Øresund', 'Ἀθῆναι']) {
  add(w); add(w.normalize('NFD')); add(w.normalize('NFKC').toUpperCase()); add(w.toLowerCase());
}

// --- real text from the shared data -----------------------------------------
function readJSONL(file) {
  try { return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)); }
  catch { return []; }
}
const tasksDir = path.join(shared, 'data', 'tasks');
let taskDirs = [];
try { taskDirs = fs.readdirSync(tasksDir).sort(); } catch { console.error('no shared tasks at', tasksDir); }
for (const t of taskDirs) {
  const files = fs.readdirSync(path.join(tasksDir, t)).filter((f) => f.endsWith('.jsonl')).sort();
  if (!files.length) continue;
  const recs = readJSONL(path.join(tasksDir, t, files[0]));
  const n = 8;
  for (let k = 0; k < n && k < recs.length; k++) {
    const r = recs[Math.floor((k * recs.length) / n)];
    for (const [key, v] of Object.entries(r)) {
      if (/^(uid|id|idx|id1|id2|label|genre|source|dialogue_id)$/.test(key)) continue;
      if (typeof v === 'string' && v.length > 0) add(v);
      else if (Array.isArray(v)) add(v.filter((x) => typeof x === 'string').join('\n'));
    }
  }
}
const corpusDir = path.join(shared, 'data', 'corpus');
let corpusFiles = [];
try { corpusFiles = fs.readdirSync(corpusDir).filter((f) => f.endsWith('.txt')).sort(); } catch { console.error('no shared corpus at', corpusDir); }
for (const f of corpusFiles) {
  const text = fs.readFileSync(path.join(corpusDir, f), 'utf8');
  const lines = text.split('\n');
  const nonEmpty = lines.map((l, i) => [l, i]).filter(([l]) => l.trim().length > 0);
  const n = 40;
  for (let k = 0; k < n && k < nonEmpty.length; k++) add(nonEmpty[Math.floor((k * nonEmpty.length) / n)][0]);
  // a few multi-line chunks (keep \r\n or \n as in the file)
  for (let k = 1; k <= 4; k++) {
    const at = Math.floor((k * lines.length) / 5);
    add(lines.slice(at, at + 6).join('\n'));
  }
}

const seen = new Set();
const outLines = [];
for (const s of cases) {
  if (seen.has(s)) continue;
  seen.add(s);
  outLines.push(JSON.stringify({ text: s }));
}
fs.writeFileSync(out, outLines.join('\n') + '\n');
console.log(`wrote ${outLines.length} strings to ${out}`);
