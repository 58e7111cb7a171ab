import { type Context, DownMessage, ExitMessage, type ExitReason, type Pid } from '../../actor/index.js';
import type { ShutdownSpec } from '../ChildSpec.js';

/**
 * Stops one child as OTP's supervisor:shutdown/2 does, and resolves with the reason it exited with.
 *
 * The child is MONITORED before the exit signal goes out, so a child that unlinked itself (or
 * traps exits and ignores `shutdown`) cannot make us wait forever for an EXIT that never comes:
 * we wait for the monitor's DOWN, and after `shutdown` ms we kill it. Afterwards the link's EXIT
 * message, if one is queued, is consumed here, so the supervisor's main loop never mistakes it
 * for a new failure; its reason is the more precise one (a DOWN for an already dead child only
 * says `noproc`).
 */
export async function shutdownChild(context: Context, pid: Pid, shutdown: ShutdownSpec): Promise<ExitReason> {
  const ref = context.monitor(pid);
  const isDown = (message: unknown): boolean => message instanceof DownMessage && message.ref === ref;
  let down: DownMessage | undefined;
  if (shutdown === 'brutal_kill') {
    context.exit(pid, 'kill');
    down = await context.receive<DownMessage>(isDown);
  } else {
    context.exit(pid, 'shutdown');
    down = await context.receive<DownMessage>(
      isDown,
      shutdown === 'infinity' ? Number.POSITIVE_INFINITY : shutdown,
    );
    if (down === undefined) {
      context.exit(pid, 'kill');
      down = await context.receive<DownMessage>(isDown);
    }
  }
  context.unlink(pid);
  const exit = await context.receive<ExitMessage>(
    (message) => message instanceof ExitMessage && message.from.equals(pid),
    0,
  );
  return exit?.reason ?? down!.reason;
}
