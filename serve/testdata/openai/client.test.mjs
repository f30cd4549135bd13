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
    client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], functions: [{ name: "f" }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "functions",
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

const person = {
  type: "object",
  properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" }, pets: { type: "array", items: { enum: ["cat", "dog"] }, maxItems: 2 } },
  required: ["name", "age", "pets"],
  additionalProperties: false,
};

test("response_format json_schema and json_object", async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.parse({
      model, seed, messages: [{ role: "user", content: "Who is Lily?" }],
      response_format: { type: "json_schema", json_schema: { name: "person", strict: true, schema: person } },
    });
    const p = r.choices[0].message.parsed;
    assert.equal(typeof p.name, "string");
    assert.ok(Number.isInteger(p.age), JSON.stringify(p));
    assert.ok(Array.isArray(p.pets) && p.pets.length <= 2 && p.pets.every((x) => x === "cat" || x === "dog"), JSON.stringify(p));
  }
  // n completions share one prefill; each has its own constraint.
  const two = await client.chat.completions.create({
    model, seed: 6, n: 2, logprobs: true, messages: [{ role: "user", content: "Who is Lily?" }],
    response_format: { type: "json_schema", json_schema: { name: "person", schema: person } },
  });
  assert.equal(two.choices.length, 2);
  for (const ch of two.choices) {
    assert.ok(Number.isInteger(JSON.parse(ch.message.content).age), ch.message.content);
    assert.ok(ch.logprobs.content.length > 0);
  }
  const o = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 40, seed: 1, response_format: { type: "json_object" } });
  assert.equal(typeof JSON.parse(o.choices[0].text), "object");
  const stream = await client.chat.completions.create({
    model, seed: 4, stream: true, messages: [{ role: "user", content: "Hi" }],
    response_format: { type: "json_schema", json_schema: { name: "person", schema: person } },
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(typeof JSON.parse(text).age, "number");
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", format: "date" } } } }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "response_format.json_schema.schema" && /"format"/.test(err.message),
  );
});

const tools = [
  { type: "function", function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string", maxLength: 10 }, unit: { enum: ["c", "f"] } }, required: ["city", "unit"] } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", maxLength: 6 } }, required: ["zone"] } } },
];

test("tools: forced calls, a history with results, streaming", async () => {
  const messages = [{ role: "user", content: "Weather in Paris?" }];
  const r = await client.chat.completions.create({ model, seed: 2, messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false });
  const c = r.choices[0];
  assert.equal(c.finish_reason, "tool_calls");
  assert.equal(c.message.content, null);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok(args.unit === "c" || args.unit === "f");
  const req = await client.chat.completions.create({ model, seed: 3, messages, tools, tool_choice: "required" });
  assert.ok(["get_weather", "get_time"].includes(req.choices[0].message.tool_calls[0].function.name));
  const next = await client.chat.completions.create({
    model, max_tokens: 6, tools, tool_choice: "none",
    messages: [...messages, c.message, { role: "tool", tool_call_id: call.id, name: "get_weather", content: "18 degrees" }],
  });
  assert.ok(typeof next.choices[0].message.content === "string");
  const auto = await client.chat.completions.create({ model, max_tokens: 6, temperature: 0, messages, tools });
  assert.notEqual(auto.choices[0].finish_reason, "tool_calls"); // the tiny model answers in text
  const stream = await client.chat.completions.create({ model, seed: 5, stream: true, messages, tools, tool_choice: "required" });
  let name = "", argText = "", finish = null;
  for await (const chunk of stream) {
    for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) {
      name += d.function?.name ?? "";
      argText += d.function?.arguments ?? "";
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(["get_weather", "get_time"].includes(name));
  assert.equal(typeof JSON.parse(argText), "object");
  assert.equal(finish, "tool_calls");
  await assert.rejects(
    client.chat.completions.create({ model, messages, tool_choice: "required" }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "tool_choice",
  );
});
