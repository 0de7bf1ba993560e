// The openai npm package against the gateway, on both base URLs: node compat.mjs GATEWAY_URL API_KEY prints one
// JSON object of what each call returned, which tests/compat/test_node.py asserts on.
import OpenAI from "openai";

const [gateway, apiKey] = process.argv.slice(2);
const messages = [{ role: "user", content: "hi" }];

async function failure(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return { class: error.constructor.name, status: error.status, code: error.code, param: error.param };
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
process.stdout.write(JSON.stringify(results));
