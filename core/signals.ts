/** Waiting for the signal that ends a process run from a terminal or by systemd. */

/** Resolves with the name of the first SIGINT or SIGTERM, once; the listeners are removed then. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
