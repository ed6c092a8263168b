/**
 * TOML read back by a real parser, Python's tomllib (3.11+; Debian 12 has 3.11): what Telegraf's
 * own parser accepts is a superset for the files we render, so a file tomllib reads is well formed.
 */
import { execFileSync, spawnSync } from 'node:child_process';

const PYTHON = '/usr/bin/python3';

/** Why TOML cannot be checked here, or undefined when it can. */
export const NO_TOMLLIB =
  spawnSync(PYTHON, ['-c', 'import tomllib'], { stdio: 'ignore' }).status === 0
    ? undefined
    : `${PYTHON} has no tomllib; Python 3.11 or later needed`;

/** Parses `text` with tomllib and returns it as JSON data; throws with tomllib's message when it is not TOML. */
export function readToml(text: string): unknown {
  const out = execFileSync(PYTHON, ['-c', 'import json,sys,tomllib; print(json.dumps(tomllib.loads(sys.stdin.read())))'], { input: text });
  return JSON.parse(out.toString('utf8'));
}
