/** `"<code>: <message>"` of the error `f` throws, or `ok` when it throws nothing (tables of checks). */
export function errorText(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    const e = err as { code: string; message: string };
    return `${e.code}: ${e.message}`;
  }
}
