// Drives a running `roe serve` with the official openai npm client.
// Run by cmd/roe TestOpenAIClient (copied next to the npm cache): ROE_BASE_URL, ROE_API_KEY, ROE_MODEL.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ROE_BASE_URL + "/v1", apiKey: process.env.ROE_API_KEY });
const model = process.env.ROE_MODEL;

test("models lists the base model and auto", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(model), ids.join(","));
  assert.ok(ids.includes("auto"), ids.join(","));
});

test("completions", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.match(r.choices[0].text, /^, there was a little girl named Lily/);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.roe.mode, "base");
});

test("streaming completions", async () => {
  const stream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0, stream: true });
  let text = "", finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.match(text, /^, there was a little girl named Lily/);
  assert.equal(finish, "length");
});

test("chat, plain and streaming", async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Tell me a story." }], max_tokens: 8 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.choices[0].message.content.length > 0);
  const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.ok(text.length > 0);
});

test("embeddings", async () => {
  const r = await client.embeddings.create({ model, input: ["Once upon a time", "Lily"] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 64);
});

test("auto routes (falls back to the base model without experts)", async () => {
  const r = await client.completions.create({ model: "auto", prompt: "The cat sat.", max_tokens: 4 });
  assert.ok(r.roe);
  assert.equal(typeof r.roe.fallback, "boolean");
});

test("errors are OpenAI errors", async () => {
  await assert.rejects(
    client.completions.create({ model: "no-such-expert", prompt: "x", max_tokens: 1 }),
    (err) => err instanceof OpenAI.NotFoundError && /no-such-expert/.test(err.message),
  );
  await assert.rejects(
    client.completions.create({ model, prompt: "x", max_tokens: 100000 }),
    (err) => err.status === 422 && /max_tokens/.test(err.message),
  );
  const bad = new OpenAI({ baseURL: process.env.ROE_BASE_URL + "/v1", apiKey: "wrong" });
  await assert.rejects(bad.completions.create({ model, prompt: "x", max_tokens: 1 }), (err) => err instanceof OpenAI.AuthenticationError);
});

test("completions logprobs and echo (lm-evaluation-harness's loglikelihood request)", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 4, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.tokens.join(""), r.choices[0].text);
  assert.equal(lp.token_logprobs.length, 4);
  assert.ok(lp.token_logprobs.every((v) => v <= 0));
  assert.ok(lp.top_logprobs.every((t, i) => Object.keys(t).length >= 2 && t[lp.tokens[i]] === lp.token_logprobs[i]));
  assert.deepEqual(lp.text_offset.slice(0, 2), [0, lp.tokens[0].length]);
  // echo with max_tokens 0 scores the prompt: the first token has no logprob.
  const e = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 0, echo: true, logprobs: 1, temperature: 0, seed: 1234 });
  const el = e.choices[0].logprobs;
  assert.equal(e.choices[0].text, "Once upon a time");
  assert.equal(el.token_logprobs[0], null);
  assert.equal(el.top_logprobs[0], null);
  assert.ok(el.token_logprobs.slice(1).every((v) => typeof v === "number" && v <= 0));
  assert.equal(e.usage.completion_tokens, 0);
  // Token ids, several prompts: a choice each, in order.
  const ids = await fetch(process.env.ROE_BASE_URL + "/tokenize", {
    method: "POST", headers: { Authorization: "Bearer " + process.env.ROE_API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Once upon a time" }),
  }).then((x) => x.json());
  assert.equal(ids.count, el.tokens.length);
  const b = await client.completions.create({ model, prompt: [ids.tokens, ids.tokens.slice(0, 3)], max_tokens: 0, echo: true, logprobs: 0 });
  assert.deepEqual(b.choices.map((c) => c.index), [0, 1]);
  assert.deepEqual(b.choices[0].logprobs.token_logprobs, el.token_logprobs);
});

test("chat logprobs, streamed too", async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 5);
  assert.ok(content.every((c) => c.top_logprobs.length === 2 && Array.isArray(c.bytes) && c.logprob <= 0));
  const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, temperature: 0, logprobs: true, stream: true });
  const streamed = [];
  for await (const chunk of stream) for (const c of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(c.token);
  assert.deepEqual(streamed, content.map((c) => c.token));
});

test("n, seed and penalties", async () => {
  const r = await client.completions.create({ model, prompt: "Lily", max_tokens: 12, temperature: 1, seed: 7, n: 3 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  const again = await client.completions.create({ model, prompt: "Lily", max_tokens: 12, temperature: 1, seed: 7, n: 3 });
  assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text));
  const c = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, n: 2 });
  assert.equal(c.choices.length, 2);
  const plain = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 60, temperature: 0 });
  for (const p of [{ frequency_penalty: 2 }, { presence_penalty: 2 }, { logit_bias: { 300: 100 } }]) {
    const x = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 60, temperature: 0, ...p });
    assert.notEqual(x.choices[0].text, plain.choices[0].text, JSON.stringify(p));
  }
  assert.ok(plain.system_fingerprint.startsWith("fp_"));
});

test("stream_options.include_usage", async () => {
  const stream = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 4);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  const plain = await client.completions.create({ model, prompt: "x", max_tokens: 2, stream: true });
  for await (const chunk of plain) assert.equal(chunk.usage, undefined);
});

test("refused and unknown fields are 400s naming them", async () => {
  await assert.rejects(
    client.completions.create({ model, prompt: "x", suffix: "y" }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "suffix" && /suffix/.test(err.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "tools",
  );
  await assert.rejects(
    client.completions.create({ model, prompt: "x", frobnicate: true }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "frobnicate" && err.type === "invalid_request_error",
  );
  await assert.rejects(
    client.completions.create({ model, prompt: "x", n: 99 }),
    (err) => err.status === 400 && err.param === "n",
  );
});
