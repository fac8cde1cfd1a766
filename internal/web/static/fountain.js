// Fountain (https://fountain.io), the screenplay plain-text format, from a
// script as scriptgen writes it: the template generator's screenplay
// (internal/generate/template.go), and anything shaped like one. What it maps:
//
//   - the front matter, every line before FADE IN: or the first scene heading,
//     becomes the title page: "TITLE: x" → "Title: x" (else the episode's
//     title), "Written by: x" → "Credit: Written by" and "Author: x"
//     (else scriptgen), everything else (CAST, the series bible's notes) →
//     "Notes:" with its lines indented;
//   - "1. INT. 카페 - NIGHT" (a line starting INT, EXT, EST, INT./EXT. or I/E,
//     numbered or not) → the scene heading "INT. 카페 - NIGHT #1#", its number
//     as Fountain's scene number, with a blank line before and after;
//   - a capitals-only line ending in "TO:" ("CUT TO:") → a transition, alone
//     between blank lines; FADE IN:, FADE OUT. and other FADE lines → forced
//     transitions ("> FADE OUT."); THE END → centred ("> THE END <");
//   - an indented line in capitals after a blank line and before more text
//     (the template's cues: 20 spaces) → a character cue; a cue with no Latin
//     capital in its name (Hangul has no case: 지수) is forced with "@", and
//     an extension such as (CONT'D) is kept; the lines after it, up to a
//     blank line, are its parentheticals ("(quietly)") and dialogue,
//     unindented;
//   - every other line → action, unindented; a line Fountain would read as
//     something else (a heading's start; starting with ! @ ~ . > = # or [[;
//     no lowercase letter, after a blank line and before more text, as a
//     cue would be — Hangul has none) is forced as action with "!".
//
// * and _ in the text are escaped (\* \_) so that they are not emphasis. The
// text itself is not changed otherwise: the page's copy and .txt download
// are the script exactly as the API sent it; this is only the .fountain.
"use strict";

const sgFountain = (() => {
  const HEADING = /^(?:(\d+)[.)]\s+)?((?:INT\.?\/EXT|EXT\.?\/INT|I\/E|INT|EXT|EST)[.\s].*)$/i;
  const isBlank = (s) => s === undefined || s.trim() === "";
  // hasLower: a letter with a capital form that is not one.
  const hasLower = (s) => s !== s.toUpperCase();
  const escape = (s) => s.replace(/([*_])/g, "\\$1");

  function isCueText(t) {
    return t.length > 0 && t.length <= 60 && !hasLower(t) && /\p{L}/u.test(t) && !/[.!?:,;…]$/.test(t);
  }

  function cue(t) {
    const name = t.replace(/\s*\(.*\)\s*$/, "");
    return /[A-Z]/.test(name) && !hasLower(name) ? t : "@" + t;
  }

  // needsForce: an action line Fountain would read as something else — a
  // heading, a forced element, or (no lowercase, after a blank line and
  // before more text) a character cue.
  function needsForce(t, afterBlank, beforeText) {
    return HEADING.test(t) || /^(?:[!@~.>=#]|\[\[)/.test(t) ||
      (!hasLower(t) && /\p{L}/u.test(t) && afterBlank && beforeText);
  }

  function titlePage(front, fallbackTitle) {
    let title = "";
    let author = "";
    const notes = [];
    for (const line of front) {
      const t = line.trim();
      if (!t) continue;
      let m;
      if (!title && (m = /^title:\s*(.*)$/i.exec(t))) title = m[1];
      else if (!author && (m = /^(?:written by|author|by):\s*(.*)$/i.exec(t))) author = m[1];
      else notes.push(t);
    }
    const out = [
      "Title: " + escape(title || fallbackTitle || "Untitled"),
      "Credit: Written by",
      "Author: " + escape(author || "scriptgen"),
    ];
    if (notes.length) {
      out.push("Notes:");
      for (const n of notes) out.push("    " + escape(n));
    }
    return out;
  }

  // toFountain converts a script; fallbackTitle is the episode's title, for
  // a script with no TITLE: line.
  function toFountain(script, fallbackTitle) {
    const lines = String(script).replace(/\r\n?/g, "\n").split("\n");
    let start = lines.findIndex((l) => /^FADE IN:?$/i.test(l.trim()) || HEADING.test(l.trim()));
    const hasFront = /^\s*title:/i.test(lines.find((l) => l.trim() !== "") || "");
    if (start < 0) start = hasFront ? lines.length : 0;
    const front = hasFront ? lines.slice(0, start) : [];
    const body = hasFront ? lines.slice(start) : lines;

    const out = titlePage(front, fallbackTitle);
    out.push("");
    // blank() ends the block before a line that must follow a blank line;
    // alone marks a line that must be followed by one.
    const blank = () => { if (out[out.length - 1] !== "") out.push(""); };
    let alone = false;
    let dialogue = false;
    const push = (s) => {
      if (alone) blank();
      alone = false;
      out.push(s);
    };
    for (let i = 0; i < body.length; i++) {
      const raw = body[i];
      const t = raw.trim();
      if (!t) {
        blank();
        dialogue = false;
        alone = false;
        continue;
      }
      if (dialogue) {
        push(/^\(.*\)$/.test(t) ? t : escape(t));
        continue;
      }
      const heading = HEADING.exec(t);
      if (heading && isBlank(body[i - 1])) {
        blank();
        push(escape(heading[2]) + (heading[1] ? " #" + heading[1] + "#" : ""));
        alone = true;
        continue;
      }
      if (!hasLower(t) && /TO:$/.test(t) && /\p{Lu}/u.test(t)) {
        blank();
        push(t);
        alone = true;
        continue;
      }
      if (/^FADE\b/i.test(t) && !hasLower(t)) {
        blank();
        push("> " + t);
        alone = true;
        continue;
      }
      if (/^THE END\.?$/.test(t)) {
        blank();
        push("> " + t + " <");
        alone = true;
        continue;
      }
      if (isCueText(t) && /^\s/.test(raw) && isBlank(body[i - 1]) && !isBlank(body[i + 1])) {
        blank();
        push(cue(t));
        dialogue = true;
        continue;
      }
      const afterBlank = alone || out[out.length - 1] === "";
      push((needsForce(t, afterBlank, !isBlank(body[i + 1])) ? "!" : "") + escape(t));
    }
    while (out.length && out[out.length - 1] === "") out.pop();
    return out.join("\n") + "\n";
  }

  return { toFountain };
})();
