// ScriptText pieces the script together from a job's `script` events
// (docs/design.md section 12), as the writer's page does: each text follows
// the first `offset` characters (code points) of the script; a text that
// ends within what is held repeats it and is ignored; one that starts past
// it follows a gap, which the caller fills from
// `GET /api/generation/{id}?include=script` (replaceWith).
import type { ScriptEventData } from "./follow.js";

export type Applied = "appended" | "repeat" | "gap";

export class ScriptText {
  private chars: string[] = [];
  /** Script events that started past the end, waiting for the text before them. */
  private pending: Array<{ seq: number; data: ScriptEventData }> = [];

  get text(): string {
    return this.chars.join("");
  }

  /** length is the script's length in characters (code points), as the API counts them. */
  get length(): number {
    return this.chars.length;
  }

  /** waiting tells whether an event waits for a gap to be filled. */
  get waiting(): boolean {
    return this.pending.length > 0;
  }

  apply(seq: number, data: ScriptEventData): Applied {
    const add = Array.from(data.text);
    const end = data.offset + add.length;
    if (end <= this.chars.length) return "repeat";
    if (data.offset > this.chars.length) {
      this.pending.push({ seq, data });
      return "gap";
    }
    this.chars.push(...add.slice(this.chars.length - data.offset));
    return "appended";
  }

  /**
   * replaceWith takes the API's whole script so far when it is longer than
   * what is held (the API's text is the script), then applies the events
   * that waited for it.
   */
  replaceWith(script: string): void {
    const chars = Array.from(script);
    if (chars.length > this.chars.length) this.chars = chars;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) this.apply(p.seq, p.data);
  }
}
