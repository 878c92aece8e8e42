/**
 * Bounds how deeply a request body may nest. JSON.parse copes with deep nesting, but the code that walks the
 * value afterwards (YAML's parser, zod, JSON.stringify) recurses, and tens of thousands of `[` in a 64 KiB body
 * overflow the stack: a 500 from a single request. No document of ours nests beyond a dozen levels.
 */

/** The deepest nesting of lists and objects a request body may have. */
export const MAX_BODY_DEPTH = 64;

/**
 * The deepest nesting of `[`/`{` in JSON or YAML flow text, skipping double-quoted strings (with their escapes),
 * so brackets inside values do not count. Linear, no recursion.
 */
export function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
  }
  return max;
}
