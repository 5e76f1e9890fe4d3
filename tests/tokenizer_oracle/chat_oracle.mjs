// The independent reference for the chat layout (lib/chat.c): renders every conversation with the
// npm package @huggingface/jinja on the template file, expands each <|image_pad|> to N copies as the
// Hugging Face processor does, and tokenizes the result with @huggingface/tokenizers.
//   node chat_oracle.mjs TEMPLATE CONVERSATIONS_JSON TOKENIZER_JSON OUT_JSON
import { readFileSync, writeFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";

const [templatePath, conversationsPath, tokenizerPath, outPath] = process.argv.slice(2);
const template = new Template(readFileSync(templatePath, "utf8"));
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
const conversations = JSON.parse(readFileSync(conversationsPath, "utf8"));
const cases = conversations.map((c) => {
  const rendered = template.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt });
  const text = rendered.split("<|image_pad|>").join("<|image_pad|>".repeat(c.n_image_tokens));
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
  return { name: c.name, text, ids };
});
const lines = cases.map((c) => JSON.stringify(c)).join(",\n");
writeFileSync(outPath, `{"renderer": "@huggingface/jinja", "cases": [\n${lines}\n]}\n`);
console.log(`${cases.length} conversations rendered`);
