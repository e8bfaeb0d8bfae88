/**
 * Progress on a TTY (items, bytes, rate, ETA), nothing otherwise. Writes one
 * self-overwriting line to stderr at most 10 times a second.
 */
export interface ProgressInit {
  /** What is being counted, e.g. "imported". */
  label: string;
  totalItems?: number;
  totalBytes?: number;
  quiet?: boolean;
}

export class Progress {
  readonly #init: ProgressInit;
  readonly #enabled: boolean;
  readonly #start = performance.now();
  #items = 0;
  #bytes = 0;
  #lastDraw = 0;

  constructor(init: ProgressInit) {
    this.#init = init;
    this.#enabled = process.stderr.isTTY === true && init.quiet !== true;
  }

  add(items: number, bytes: number): void {
    this.#items += items;
    this.#bytes += bytes;
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    this.#draw(now);
  }

  /** Clears the line (the results printed on stdout stay). */
  done(): void {
    if (this.#enabled) process.stderr.write("\r\x1b[K");
  }

  #draw(now: number): void {
    const secs = (now - this.#start) / 1000;
    const rate = this.#bytes / Math.max(secs, 0.001);
    const { totalItems, totalBytes, label } = this.#init;
    let line = `${label} ${this.#items}${totalItems === undefined ? "" : `/${totalItems}`} items, ${formatBytes(this.#bytes)}`;
    if (totalBytes !== undefined) line += `/${formatBytes(totalBytes)}`;
    line += `, ${formatBytes(rate)}/s`;
    if (totalBytes !== undefined && rate > 0 && this.#bytes < totalBytes) {
      line += `, ETA ${Math.ceil((totalBytes - this.#bytes) / rate)} s`;
    }
    process.stderr.write(`\r\x1b[K${line}`);
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
