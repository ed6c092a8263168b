/** The agent's version: set by the bundle build (a package may carry its own), else package.json. */
import pkg from '../package.json' with { type: 'json' };

// Replaced by esbuild's `define` in the bundle; absent (undefined) when running from sources.
declare const __MAMMATUS_VERSION__: string | undefined;

/** Version string the agent reports and sets as its `mammatus` tag. */
export const VERSION: string = typeof __MAMMATUS_VERSION__ === 'string' ? __MAMMATUS_VERSION__ : pkg.version;
