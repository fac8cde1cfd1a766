// ScriptText: the rules the writer's page applies to `script` events
// (docs/design.md section 12), on code points as the API counts them.
import { expect, it } from "vitest";
import { ScriptText } from "../src/index.js";

it("appends, ignores a repeat, trims an overlap and waits at a gap for the API's text", () => {
  const s = new ScriptText();
  expect(s.apply(4, { seq: 4, offset: 0, text: "지수: 안녕" })).toBe("appended");
  expect(s.length).toBe(6);
  expect(s.apply(5, { seq: 5, offset: 2, text: "수: " })).toBe("repeat");
  expect(s.apply(6, { seq: 6, offset: 4, text: "안녕하세요.\n" })).toBe("appended");
  expect(s.text).toBe("지수: 안녕하세요.\n");
  // A text past the end leaves a gap: held back until the text before it comes.
  expect(s.apply(9, { seq: 9, offset: 22, text: "끝" })).toBe("gap");
  expect(s.waiting).toBe(true);
  expect(s.text).toBe("지수: 안녕하세요.\n");
  s.replaceWith("지수: 안녕하세요.\nMinho: 반가워요");
  expect(s.waiting).toBe(false);
  expect(s.text).toBe("지수: 안녕하세요.\nMinho: 반가워요끝");
  expect(s.length).toBe(Array.from("지수: 안녕하세요.\nMinho: 반가워요끝").length);
});
