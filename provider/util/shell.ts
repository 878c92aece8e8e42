/** Quotes a value for POSIX sh: single quotes, each embedded `'` written as `'\''`; one word whatever it holds. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
