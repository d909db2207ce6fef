import { Command } from 'commander';
import { JiffyError } from '../errors.js';
import { registerAll } from './commands/index.js';

/** The `jiffy` command line: one small file per command group under ./commands. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('jiffy')
    .description('Jiffy: run functions, containers and sandboxes from layered OCI images')
    .option('--root <dir>', 'store root (default $JIFFY_ROOT or /var/lib/jiffy)')
    .showHelpAfterError()
    .exitOverride();
  program.hook('preAction', (cmd) => {
    const root = cmd.opts().root as string | undefined;
    if (root) process.env.JIFFY_ROOT = root;
  });
  await registerAll(program, argv.slice(2));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e);
  }
}

function reportError(e: unknown): number {
  const ce = e as { code?: string; exitCode?: number };
  if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
    return ce.exitCode ?? 1; // commander already printed help or the usage error
  }
  if (e instanceof JiffyError || (typeof ce.code === 'string' && e instanceof Error)) {
    console.error(`jiffy: ${(e as Error).message}`);
    return 1;
  }
  console.error('jiffy: unexpected error:', e);
  return 2;
}

main(process.argv).then((code) => process.exit(code));
