/** The agent's version, from package.json (bundled into the CLI by esbuild). */
import pkg from '../package.json' with { type: 'json' };

/** Version string the agent reports and sets as its `mammatus` tag. */
export const VERSION: string = pkg.version;
