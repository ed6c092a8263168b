/** One raw HTTP exchange over loopback: for requests that fetch would not send as they are. */
import net from 'node:net';

/** Writes `bytes` to `port`, then reads until the server closes or `waitMs` pass. */
export function exchange(port: number, bytes: Buffer, waitMs = 2000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => done(true));
    socket.on('error', () => done(true));
  });
}
