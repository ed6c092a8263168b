// Lint rules: typescript-eslint's type-checked recommended set on every TypeScript source (so a
// floating promise or a promise where a callback is expected is an error), and the import
// direction of docs/architecture.md as rules: a file that imports against it fails the lint.
import js from '@eslint/js';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import tseslint from 'typescript-eslint';

/** Every folder of ours; each layer below names the ones it must not import. */
const ALL = ['./core', './agent', './roles', './handlers', './src', './scripts', './bench', './test'];
const but = (...allowed) => ALL.filter((p) => !allowed.includes(p));

/**
 * The import direction: ground floor (core) → Serf client (agent/serf) → roles and services (roles/,
 * src/, beside the LXD client in src/lxd) → the agent (daemon, dispatch, config, handlers) → the CLI
 * and the composition roots (agent/cli, agent/main.ts, agent/roles.ts). Scripts, benchmarks and
 * tests sit on top; benchmarks never import tests.
 */
const zones = [
  { target: './core', from: but('./core'), message: 'core/ is the ground floor: it imports nothing of ours.' },
  { target: './agent/serf', from: but('./core', './agent'), message: 'the Serf client knows only core/.' },
  { target: './agent/serf', from: './agent', except: ['./serf'], message: 'the Serf client knows only core/.' },
  { target: './src/lxd', from: but('./core', './src'), message: 'the LXD client knows only core/.' },
  { target: './src/lxd', from: './src', except: ['./lxd'], message: 'the LXD client knows only core/.' },
  {
    target: './roles',
    from: but('./core', './roles', './src'),
    message: 'roles know core/, the role framework and the LXD client only; the agent wires them.',
  },
  {
    target: './roles',
    from: './src',
    except: ['./lxd'],
    message: 'roles get services injected by the composition root (agent/roles.ts), never import them.',
  },
  { target: './roles/*.ts', from: './roles/*/**', message: 'the role framework knows no role.' },
  ...['gateway', 'compute', 'controller'].map((r) => ({
    target: `./roles/${r}`,
    from: './roles',
    except: [`./${r}`, './types.ts', './apply.ts'],
    message: 'a role never reaches into another role (or the scheduler).',
  })),
  { target: './src', from: but('./core', './src'), message: 'services know core/ and each other only; the agent wires them.' },
  { target: './src/registry', from: './src', except: ['./registry'], message: 'the registry knows core/ only.' },
  { target: './src/messaging', from: './src', except: ['./messaging'], message: 'messaging knows core/ only.' },
  {
    target: './src/messaging/engine',
    from: ['./src/messaging/protocol', './src/messaging/http.ts', './src/messaging/service.ts', './src/messaging/hosted.ts'],
    message: 'the engine knows its contracts (sqs-engine.ts, sns-engine.ts), never the wire layer above it.',
  },
  {
    target: './src/metadata',
    from: './src',
    // ./hosts/joins.ts: a planned host's seed carries its join secret (issue 19).
    except: ['./metadata', './registry', './hosts/joins.ts'],
    message: "the metadata service knows the registry, the hosts' join secrets and core/ only.",
  },
  ...[['./agent/cli', './agent/main.ts', './agent/roles.ts', './src', './scripts', './bench', './test'], ['./roles/*/**']].map((from) => ({
    target: ['./agent/daemon.ts', './agent/types.ts', './agent/version.ts', './agent/config', './agent/dispatch', './handlers'],
    from,
    message:
      'the agent runs roles and handlers through their contracts; only the composition roots (agent/main.ts, agent/roles.ts, agent/cli) know them.',
  })),
  {
    target: ['./agent/dispatch', './agent/config'],
    from: ['./agent/daemon.ts', './handlers'],
    message: 'dispatch and config sit below the daemon and its handlers.',
  },
  {
    target: ['./core', './agent', './roles', './handlers', './src'],
    from: ['./scripts', './bench', './test'],
    message: 'product code never imports scripts, benchmarks or tests.',
  },
  { target: './scripts', from: ['./bench', './test'], message: 'scripts never import benchmarks or tests.' },
  { target: './bench', from: './test', message: 'benchmarks never import tests: shared launchers live in scripts/lib.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.cluster/**', 'test/lint/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', '*.mjs', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver': undefined,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // `void promise` hides a rejection: every promise is awaited, returned or given a catch.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
      // Re-throwing what a catch caught, whatever it is, is how an error passes through.
      '@typescript-eslint/only-throw-error': ['error', { allowRethrowing: true, allowThrowingUnknown: true }],
      // An async function without await still returns a promise that contracts ask for (Role hooks,
      // hosted services); dropping `async` would turn its throws into synchronous ones.
      '@typescript-eslint/require-await': 'off',
      'no-console': 'error',
      eqeqeq: ['error', 'always'],
      'import-x/no-restricted-paths': ['error', { zones }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    files: ['scripts/**', 'bench/**', 'agent/cli/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  // Tests assert on parsed JSON and on vitest's asymmetric matchers, which are typed `any`.
  {
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  // The boundary test lints its fixtures as if they lay in the tree: no type information there.
  { files: ['**/*.lint-fixture.ts'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.mjs', '**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
);
