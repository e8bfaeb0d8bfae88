/**
 * gRPC health checking (`grpc.health.v1.Health`): `Check`, `List`, and
 * `Watch`. The server as a whole ("") and every service it serves are
 * SERVING until shutdown starts, then NOT_SERVING (so load balancers and
 * `grpc_health_probe` stop sending new calls during the grace period).
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../proto/gen/grpc/health/v1/health_pb.js";

export class HealthState {
  readonly #services: ReadonlySet<string>;
  #status: Status = Status.SERVING;
  readonly #watchers = new Set<() => void>();

  /** `services`: the full names of the services served (besides "" for the server). */
  constructor(services: Iterable<string>) {
    this.#services = new Set(["", ...services]);
  }

  get services(): readonly string[] {
    return [...this.#services];
  }

  /** Marks everything NOT_SERVING (shutdown started) and tells the watchers. */
  shuttingDown(): void {
    this.#status = Status.NOT_SERVING;
    for (const w of this.#watchers) w();
  }

  /** Whether shutdown started. */
  get shuttingDownNow(): boolean {
    return this.#status === Status.NOT_SERVING;
  }

  statusOf(service: string): Status {
    return this.#services.has(service) ? this.#status : Status.SERVICE_UNKNOWN;
  }

  /** Resolves on the next status change, or when `signal` fires. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#watchers.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#watchers.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

export function healthHandlers(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = state.statusOf(req.service);
      if (status === Status.SERVICE_UNKNOWN) {
        throw new ConnectError(`unknown service '${req.service}'`, Code.NotFound);
      }
      return { status };
    },
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const s of state.services) statuses[s] = { status: state.statusOf(s) };
      return { statuses };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = state.statusOf(req.service);
        if (status !== last) {
          yield { status };
          last = status;
        }
        // Nothing changes after shutdown started: end the stream so the
        // shutdown does not wait for watchers.
        if (state.shuttingDownNow) return;
        await state.changed(ctx.signal);
      }
    },
  };
}
