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

test("LoRA adapters: vLLM load/unload, LoRAX adapter_id, llama.cpp lora", async () => {
  const admin = { "Content-Type": "application/json", Authorization: "Bearer " + process.env.ROE_API_KEY };
  const post = (path, body) => fetch(process.env.ROE_BASE_URL + path, { method: "POST", headers: admin, body: JSON.stringify(body) });
  let res = await post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: "sql" });
  let text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(text, "Success: LoRA adapter 'sql' added successfully.");
  res = await post("/v1/load_lora_adapter", { lora_name: "x", lora_path: "../outside" });
  assert.equal(res.status, 400);
  const cards = [];
  for await (const m of client.models.list()) cards.push(m);
  const card = cards.find((m) => m.id === "sql");
  assert.ok(card, cards.map((m) => m.id).join(","));
  assert.equal(card.roe_routable, false);
  assert.equal(card.parent, model);
  let r = await client.completions.create({ model: "sql", prompt: "Once", max_tokens: 2 });
  assert.equal(r.roe.mode, "expert");
  assert.deepEqual(r.roe.unroutable, ["sql"]);
  r = await client.completions.create({ model, prompt: "Once", max_tokens: 2, adapter_id: "sql" });
  assert.equal(r.roe.experts[0].name, "sql");
  r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 2, lora: [{ id: "sql", scale: 0.5 }] });
  assert.equal(r.roe.mode, "expert");
  assert.equal(r.roe.experts[0].weight, 0.5);
  res = await post("/v1/unload_lora_adapter", { lora_name: "sql" });
  assert.equal(res.status, 200, await res.text());
  await assert.rejects(client.completions.create({ model: "sql", prompt: "x", max_tokens: 1 }), (err) => err instanceof OpenAI.NotFoundError);
});
