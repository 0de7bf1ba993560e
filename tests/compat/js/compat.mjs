// The openai npm package against the gateway, on both base URLs, and the @anthropic-ai/sdk package on its Messages
// routes: node compat.mjs GATEWAY_URL API_KEY NARROW_KEY prints one JSON object of what each call returned, which
// tests/compat/test_node.py asserts on.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [gateway, apiKey, narrowKey] = process.argv.slice(2);
const messages = [{ role: "user", content: "hi" }];

async function failure(call) {
  try {
    await call();
    return null;
  } catch (error) {
    const type = error.error?.error?.type; // Anthropic's envelope
    return { class: error.constructor.name, status: error.status, code: error.code, param: error.param, type };
  }
}

async function run(client) {
  const created = await client.responses.create({ model: "gpt-4.1", input: "Say hello" });
  const types = [];
  let deltas = "";
  for await (const event of await client.responses.create({ model: "gpt-4.1", input: "hi", stream: true })) {
    types.push(event.type);
    if (event.type === "response.output_text.delta") deltas += event.delta;
  }
  const helper = await client.responses.stream({ model: "gpt-4.1", input: "hi" }).finalResponse();
  const chat = await client.chat.completions.create({ model: "gpt-4o-mini", messages });
  let chatText = "";
  let chatUsage = null;
  const chatStream = await client.chat.completions.create({
    model: "gpt-4o-mini", messages, stream: true, stream_options: { include_usage: true },
  });
  for await (const chunk of chatStream) {
    chatText += chunk.choices[0]?.delta?.content ?? "";
    chatUsage = chunk.usage ?? chatUsage;
  }
  const embeddings = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
  const speech = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "Hello" });
  const audio = Buffer.from(await speech.arrayBuffer());
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  return {
    responses_create: { status: created.status, text: created.output_text },
    responses_stream: { first: types[0], last: types.at(-1), deltas },
    responses_helper: { status: helper.status, text: helper.output_text },
    chat_create: { text: chat.choices[0].message.content, usage: chat.usage },
    chat_stream: { text: chatText, usage: chatUsage },
    embeddings: { count: embeddings.data.length, first: embeddings.data[1].embedding.slice(0, 2) },
    speech: { type: speech.headers.get("content-type"), bytes: audio.length },
    models,
    error_400: await failure(() => client.chat.completions.create({ model: "gpt-4o-mini", messages: [] })),
  };
}

const results = {};
for (const prefix of ["/v1", "/openai"]) {
  const client = new OpenAI({ baseURL: gateway + prefix, apiKey, maxRetries: 0, timeout: 30000 });
  results[prefix] = await run(client);
  const stranger = new OpenAI({ baseURL: gateway + prefix, apiKey: "sk-not-a-key", maxRetries: 0 });
  results[prefix].error_401 = await failure(() => stranger.responses.create({ model: "gpt-4.1", input: "hi" }));
}
async function claude(client) {
  const model = "claude-sonnet-4-5-20250929";
  const messages = [{ role: "user", content: "Say hello" }];
  const created = await client.messages.create({ model, max_tokens: 64, messages });
  const types = [];
  let deltas = "";
  for await (const event of await client.messages.create({ model, max_tokens: 64, messages, stream: true })) {
    types.push(event.type);
    if (event.type === "content_block_delta") deltas += event.delta.text;
  }
  const helper = await client.messages.stream({ model: "claude-opus-5-5", max_tokens: 64, messages }).finalMessage();
  const counted = await client.messages.countTokens({ model, messages });
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  const narrow = new Anthropic({ baseURL: gateway, apiKey: narrowKey, maxRetries: 0 });
  const stranger = new Anthropic({ baseURL: gateway, apiKey: "sk-not-a-key", maxRetries: 0 });
  return {
    create: { text: created.content[0].text, usage: created.usage },
    stream: { first: types[0], last: types.at(-1), deltas },
    helper: { text: helper.content[0].text, output_tokens: helper.usage.output_tokens },
    count_tokens: counted.input_tokens,
    models,
    error_400: await failure(() => client.messages.create({ model, max_tokens: 0, messages })),
    error_401: await failure(() => stranger.messages.create({ model, max_tokens: 9, messages })),
    error_403: await failure(() => narrow.messages.create({ model, max_tokens: 9, messages })),
  };
}

results.anthropic = await claude(new Anthropic({ baseURL: gateway, apiKey, maxRetries: 0, timeout: 30000 }));
process.stdout.write(JSON.stringify(results));
