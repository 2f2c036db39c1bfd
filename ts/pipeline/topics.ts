/**
 * The topics a pipeline consumes, by the index the stage knows them by: fixed by
 * `kafka.topic`/`kafka.topics`, growing when `kafka.topic_pattern` finds topics (at an
 * assignment, before any message of them is staged). Indexes never change, so staged and spilled
 * rows keep meaning the same topic.
 */
import { InternalError } from '../errors.js';
import type { Stage } from '../stage.js';

/** The topic of a stage's topic index; an index outside the list is a bug (its txn app id would be made up). */
export function topicAt(names: readonly string[], index: number): string {
  const name = names[index];
  if (name === undefined) throw new InternalError('INTERNAL', `topic #${index} is not in the stage's topic list`);
  return name;
}

export class TopicList {
  /** Names by index; the same array for the pipeline's whole life (the intake, flusher and metrics read it). */
  readonly names: string[] = [];
  /** Index by name. */
  readonly index = new Map<string, number>();
  readonly #grows: boolean;
  /** The cluster's topics when the pipeline subscribed (with a pattern). */
  #atStart: ReadonlySet<string> | undefined;
  /** The same, as listed. */
  clusterAtStart: readonly string[] = [];

  /** `grows`: topics outside the list may be assigned (a pattern subscription). */
  constructor(grows: boolean) {
    this.#grows = grows;
  }

  /** Notes the cluster's topics at the start: `kafka.start_from` is for them. */
  existedAtStart(names: readonly string[]): void {
    this.#atStart = new Set(names);
    this.clusterAtStart = names;
  }

  /**
   * Whether a pattern found `topic` after the start: it is read from its beginning (when the
   * table has nothing of it), whatever `kafka.start_from` says, since every record of it was
   * written after the pipeline started.
   */
  createdSinceStart(topic: string): boolean {
    return this.#atStart !== undefined && !this.#atStart.has(topic);
  }

  /** The topic of an index the stage handed out. */
  nameAt(index: number): string {
    return topicAt(this.names, index);
  }

  /** The index of an assigned topic. */
  indexOf(topic: string): number {
    const index = this.index.get(topic);
    if (index === undefined) throw new InternalError('INTERNAL', `topic ${JSON.stringify(topic)} is not in the stage's topic list`);
    return index;
  }

  /** Takes the stage's list (which starts with this one). */
  follow(list: readonly string[]): void {
    list.slice(0, this.names.length).forEach((name, i) => {
      if (name !== this.names[i]) throw new InternalError('INTERNAL', `the stage's topic ${i} changed from ${this.names[i]} to ${name}`);
    });
    for (let i = this.names.length; i < list.length; i++) {
      const name = list[i] as string;
      this.names.push(name);
      this.index.set(name, i);
    }
  }

  /**
   * Adds to the stage (and this list) the assigned topics not in it yet; returns them. With a
   * fixed list an assigned topic outside it is a bug, not a topic to take in.
   */
  admit(stage: Stage, topics: Iterable<string>): string[] {
    const found = [...new Set(topics)].filter((t) => !this.index.has(t)).sort();
    if (found.length === 0) return found;
    if (!this.#grows) throw new InternalError('INTERNAL', `assigned topics that were not subscribed: ${found.join(', ')}`);
    this.follow(stage.addTopics(found));
    return found;
  }
}
