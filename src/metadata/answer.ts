/** What the metadata service's handlers answer, and the few answers every handler shares. Pure. */

/** A handler's answer. */
export interface Answer {
  readonly status: number;
  readonly body: string | Buffer;
  readonly type: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Plain text. */
export const TEXT = 'text/plain; charset=utf-8';

/** A plain-text answer. */
export const answerText = (status: number, body: string, headers?: Record<string, string>): Answer => ({
  status,
  body,
  type: TEXT,
  ...(headers ? { headers } : {}),
});

/** A JSON answer. */
export const answerJson = (status: number, value: unknown): Answer => ({ status, body: JSON.stringify(value), type: 'application/json' });

/** 404, the answer for every caller or path the service does not know. */
export const NOT_FOUND = answerText(404, 'Not Found');
