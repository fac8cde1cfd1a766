// CountingEventSource is the `eventsource` package's EventSource, counting
// the streams open at once: the follower must never hold two.
import { EventSource } from "eventsource";

export class CountingEventSource extends EventSource {
  static open = 0;
  static most = 0;
  static made = 0;
  private counted = true;

  constructor(url: string | URL) {
    super(url);
    CountingEventSource.made++;
    CountingEventSource.open++;
    CountingEventSource.most = Math.max(CountingEventSource.most, CountingEventSource.open);
  }

  override close(): void {
    if (this.counted) {
      this.counted = false;
      CountingEventSource.open--;
    }
    super.close();
  }

  static reset(): void {
    CountingEventSource.open = 0;
    CountingEventSource.most = 0;
    CountingEventSource.made = 0;
  }
}
