// The independent reference for the C tokenizer (lib/tokenizer.c): encodes and decodes every test
// string with the npm package @huggingface/tokenizers and writes the expected ids and text.
//   node oracle.mjs TOKENIZER_JSON STRINGS_JSON OUT_JSON
import { readFileSync, writeFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokenizerPath, stringsPath, outPath] = process.argv.slice(2);
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
const strings = JSON.parse(readFileSync(stringsPath, "utf8"));
const cases = strings.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
  const decode = (skip) =>
    ids.length ? tokenizer.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "";
  const decoded = decode(false);
  const decodedSkip = decode(true);
  return { text, ids, decoded, decoded_skip_special: decodedSkip };
});
writeFileSync(outPath, JSON.stringify({ tokenizer: "@huggingface/tokenizers", cases }, null, 0) + "\n");
console.log(`${cases.length} strings encoded`);
