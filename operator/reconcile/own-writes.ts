// Telling the watch echo of the operator's own writes to env Secrets from changes someone else made. An echo may
// arrive before the write's answer does, so events seen while a write is in flight are held and judged when it
// ends: ours if they carry the resourceVersion the write produced, someone else's (reconcile again) otherwise.
export const DELETED = '(deleted)';

interface Entry {
  ownerKey: string;
  /** Versions the watch reported while the write was in flight. */
  seen: string[];
  /** The version our finished write produced, until its echo arrives. */
  expected?: string;
}

export class OwnWrites {
  private readonly entries = new Map<string, Entry>();

  /** `onForeign` gets the binding key to reconcile again when someone else changed its Secret mid-write. */
  constructor(private readonly onForeign: (ownerKey: string) => void) {}

  async track<T>(secretKey: string, ownerKey: string, write: () => Promise<T>, versionOf: (result: T) => string | undefined): Promise<T> {
    const entry: Entry = { ownerKey, seen: [] };
    this.entries.set(secretKey, entry);
    let version: string | undefined;
    try {
      const result = await write();
      version = versionOf(result);
      return result;
    } finally {
      if (this.entries.get(secretKey) === entry) {
        const foreign = entry.seen.some((seen) => seen !== version);
        if (version !== undefined && !entry.seen.includes(version)) entry.expected = version;
        else this.entries.delete(secretKey);
        if (foreign) this.onForeign(ownerKey);
      }
    }
  }

  /** Whether a watch event (`version`, or DELETED) is our own write's echo, or held until the write ends. */
  isOwn(secretKey: string, version: string): boolean {
    const entry = this.entries.get(secretKey);
    if (!entry) return false;
    if (entry.expected === undefined) {
      entry.seen.push(version);
      return true;
    }
    this.entries.delete(secretKey);
    return entry.expected === version;
  }
}
