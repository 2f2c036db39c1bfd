/**
 * The pipeline: consume → pack → stage (native decode) → flush (one Delta commit with the Kafka
 * positions) → Kafka offset commit. The Delta log decides where each partition starts.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config/index.js';
import { InternalError, KafkaDeltaError } from '../errors.js';
import { KafkaSource, partitionKey, type PartitionRef, type PartitionStart } from '../kafka/consumer.js';
import { openDeadLetterSink, type DeadLetterSink } from '../dead-letters/sink.js';
import { DeltaDeadLetterSink } from '../dead-letters/delta-sink.js';
import { silentLogger, type Logger } from '../log.js';
import { configureThreads } from '../native.js';
import { secretValues } from '../config/load.js';
import { maskingLogger } from '../masking.js';
import { NativeLogForwarder } from '../native-log.js';
import type { Stage, RejectedMessage, StagingRecovery } from '../stage.js';
import { Intake } from './intake.js';
import type { DeltaTarget } from '../table.js';
import { PipelineMetrics } from '../metrics/metrics.js';
import { Backpressure } from './backpressure.js';
import { CaughtUpTracker } from './caught-up.js';
import { Flusher, type FlushSummary } from './flush.js';
import { DeadLetterTally } from '../dead-letters/tally.js';
import { kafkaProperties, txnAppId } from './identity.js';
import { FlushSchedule, systemClock, type Clock } from './schedule.js';
import { MaintenanceScheduler } from './maintenance.js';
import { describeLost, skippedRange, startPositions } from './start-positions.js';
import { headersRead, stageOptions, stagingOptions, writeOptions } from './stage-options.js';
import { openOrCreateTarget } from './open-table.js';
import { checkSupported, checkTableFits } from './validate.js';
import { TopicList } from './topics.js';
import { subscribedTopics, subscription } from '../kafka/topic-pattern.js';

export type { FlushSummary };

/** A message sent to the dead-letter sink. */
export interface DeadLetterEvent extends Omit<RejectedMessage, 'topicIndex'> {
  readonly topic: string;
}

/** Events a pipeline emits. */
export interface PipelineEvents {
  /** A flush committed (or found nothing new to commit). */
  flush: [FlushSummary];
  /** A message could not become a row and went to the dead-letter sink. */
  deadLetter: [DeadLetterEvent];
  /** The pipeline stopped on an error. */
  error: [Error];
}

/** Options of {@link Pipeline}. */
export interface PipelineOptions {
  /** Where logs go; silent by default for embedders. */
  logger?: Logger;
  /** Ingest up to the high watermarks seen at start, flush, and stop. */
  untilCaughtUp?: boolean;
  /** Metrics to update; a fresh registry by default. */
  metrics?: PipelineMetrics;
  /** The time flush triggers are checked against (tests move it by hand). */
  clock?: Clock;
  /**
   * Seconds a stop may take to flush before it persists what is staged and returns anyway;
   * default `shutdown.grace_period`. Nothing is lost either way: unflushed rows are on disk or
   * still in Kafka.
   */
  stopGraceSeconds?: number;
}

/** What a finished run did. */
export interface RunSummary {
  readonly messages: number;
  readonly rowsWritten: number;
  /** Rows consolidated away (duplicates, or folded into a row with the same key). */
  readonly rowsDeduplicated: number;
  readonly deadLetters: number;
  readonly flushes: number;
  /** Seconds from the start of consumption to the last commit. */
  readonly seconds: number;
}

/** Streams the configured Kafka topics into the configured Delta table. */
export class Pipeline {
  readonly config: Config;
  readonly metrics: PipelineMetrics;
  readonly #log: Logger;
  readonly #events = new EventEmitter();
  readonly #deadLetterTally = new DeadLetterTally();
  readonly #untilCaughtUp: boolean;
  /** The stage's topic list (grows with `kafka.topic_pattern`). */
  readonly #topics: TopicList;
  readonly #schedule: FlushSchedule;
  readonly #stopGraceMs: number;
  readonly #clock: Clock;
  /** Last offsets of rows recovered from the staging directory, by partition key. */
  readonly #recovered = new Map<string, number>();
  #nativeLogs: NativeLogForwarder | undefined;
  /** Native records are kept only when the embedder gave a logger to send them to. */
  #nativeLogLevel: Config['logging']['level'] | 'off' = 'off';
  #target: DeltaTarget | undefined;
  #stage: Stage | undefined;
  #source: KafkaSource | undefined;
  #flusher: Flusher | undefined;
  #deadLetters: DeadLetterSink | undefined;
  #caughtUp: CaughtUpTracker | undefined;
  #intake: Intake | undefined;
  #maintenance: MaintenanceScheduler | undefined;
  #running = false;
  #stopRequested = false;
  #loop: Promise<RunSummary> | undefined;
  #startedAt = 0;
  #stopDeadline = Number.POSITIVE_INFINITY;

  constructor(config: Config, options: PipelineOptions = {}) {
    checkSupported(config);
    this.config = config;
    // Every record, ours and the native core's, with the credentials masked.
    this.#log = maskingLogger(options.logger ?? silentLogger, secretValues(config));
    this.#untilCaughtUp = options.untilCaughtUp ?? false;
    this.metrics = options.metrics ?? new PipelineMetrics();
    this.#topics = new TopicList(config.kafka.topicPattern !== undefined);
    this.#clock = options.clock ?? systemClock;
    this.#schedule = FlushSchedule.fromConfig(config.batch, this.#clock);
    this.#stopGraceMs = (options.stopGraceSeconds ?? config.shutdown.gracePeriodSeconds) * 1000;

    if (options.logger) this.#nativeLogLevel = config.logging.level;
  }

  /** Subscribes to pipeline events. */
  on<E extends keyof PipelineEvents>(event: E, listener: (...args: PipelineEvents[E]) => void): this {
    this.#events.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Unsubscribes from pipeline events. */
  off<E extends keyof PipelineEvents>(event: E, listener: (...args: PipelineEvents[E]) => void): this {
    this.#events.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** The target table, once started. */
  get target(): DeltaTarget | undefined {
    return this.#target;
  }

  /** Opens and checks the table, connects to Kafka and starts consuming. */
  async start(): Promise<void> {
    if (this.#loop) throw new KafkaDeltaError('ALREADY_STARTED', 'the pipeline is already running');
    const { config } = this;
    configureThreads(config.concurrency.numThreads);
    this.#nativeLogs ??= new NativeLogForwarder(this.#log, this.#nativeLogLevel);
    const target = await openOrCreateTarget(config, this.#log);
    checkTableFits(config, target);
    this.#target = target;
    this.metrics.tableVersion(target.uri, target.info().version);
    this.#stage = target.createStage({ ...stageOptions(config), staging: stagingOptions(config, target.uri) });
    this.#topics.follow(this.#stage.topics);
    await this.#recoverStaging(this.#stage);
    const deadLetters = await openDeadLetterSink(config, this.#log);
    this.#deadLetters = deadLetters;
    // The dead-letter table records positions too: they must not expire either.
    if (deadLetters instanceof DeltaDeadLetterSink) deadLetters.table.checkWritable('INSERT');
    this.#log.info('dead letters go to', { sink: deadLetters.description });
    this.#flusher = new Flusher({
      target,
      deadLetters,
      stage: this.#stage,
      topics: this.#topics.names,
      appId: (topic, partition) => txnAppId(config.kafka.groupId, topic, partition),
      maxAttempts: config.concurrency.retryAttempts + 1,
      write: writeOptions(config),
      metrics: this.metrics,
      log: this.#log,
      commitKafkaOffsets: (positions) => this.#source?.commitOffsets(positions),
      onFlush: (summary) => this.#events.emit('flush', summary),
      deadLetterTally: this.#deadLetterTally,
    });
    this.#source = new KafkaSource(
      {
        brokers: config.kafka.brokers,
        groupId: config.kafka.groupId,
        topics: subscription(config.kafka),
        maxPollRecords: config.kafka.maxPollRecords,
        consumeTimeoutMs: config.kafka.consumeTimeoutMs,
        properties: kafkaProperties(config),
      },
      {
        onAssign: (parts) => this.#onAssign(parts),
        onRevoke: (parts) => this.#onRevoke(parts),
      },
      this.#log,
    );
    this.#source.onLag((lags) => this.metrics.consumerLag(lags));
    this.#source.onPositionReset((p) => this.metrics.positionLost(p.topic, undefined));
    this.metrics.brokerUp(true);
    this.#source.health.onChange((up) => this.metrics.brokerUp(up));
    await this.#source.connect(async () => {
      if (config.kafka.topicPattern !== undefined) this.#topics.existedAtStart(await (this.#source as KafkaSource).topicNames());
    });
    if (this.#untilCaughtUp) {
      this.#caughtUp = new CaughtUpTracker((parts) => this.#recordedPositions(parts));
      await this.#caughtUp.init(this.#source, subscribedTopics(config.kafka, this.#topics.clusterAtStart), config.kafka.startFrom);
      this.#source.onPartitionEof((p) => this.#caughtUp?.reachedEnd(p));
    }
    this.#log.info('pipeline started', {
      table: target.uri,
      topics: subscription(config.kafka).join(','),
      group: config.kafka.groupId,
      mode: config.delta.mode,
      flush: this.#schedule.describe(),
    });
    this.#running = true;
    this.#startedAt = performance.now();
    this.#maintenance = new MaintenanceScheduler({ target, config, metrics: this.metrics.maintenance, log: this.#log, clock: this.#clock });
    this.#maintenance.start();
    this.#loop = this.#run();
    this.#loop.catch(() => {});
  }

  /** Runs until stopped (or caught up, with `untilCaughtUp`); resolves with what it did. */
  async run(): Promise<RunSummary> {
    if (!this.#loop) await this.start();
    return this.#loop as Promise<RunSummary>;
  }

  /**
   * Stops consuming and disconnects. What is staged is committed, unless a flush schedule is
   * configured and not due: then it is persisted to the staging directory for the next start.
   * A flush that outlasts the grace period is abandoned after persisting (nothing is lost: its
   * rows are re-read from the staging directory or Kafka).
   */
  async stop(): Promise<RunSummary | undefined> {
    if (!this.#stopRequested) this.#stopDeadline = performance.now() + this.#stopGraceMs;
    this.#stopRequested = true;
    return this.#loop;
  }

  /** Flushes what is staged now. */
  async flush(): Promise<FlushSummary | undefined> {
    return this.#flusher?.flush();
  }

  async #onAssign(parts: readonly PartitionRef[]): Promise<PartitionStart[]> {
    const target = this.#target;
    const source = this.#source;
    if (!target || !source) throw new KafkaDeltaError('NOT_STARTED', 'partitions assigned before the table was opened');
    // Batches consumed under the previous assignment land first (nothing of theirs may be
    // staged once this one is set), then a flush in flight, which may move these positions.
    await this.#intake?.settle().catch(() => {});
    await this.#flusher?.settle();
    const found = this.#stage ? this.#topics.admit(this.#stage, parts.map((p) => p.topic)) : [];
    if (found.length > 0) this.#log.info('kafka.topic_pattern matched new topics', { topics: found.join(',') });
    const recorded = await this.#recordedPositions(parts);
    const { kafka } = this.config;
    const { starts, moved } = await startPositions(
      parts.map((p) => {
        const key = partitionKey(p.topic, p.partition);
        const table = recorded.get(key);
        // Rows recovered from staging continue the table: reading resumes after them.
        const staged = this.#recovered.get(key);
        const startFrom = this.#topics.createdSinceStart(p.topic) ? ('earliest' as const) : undefined;
        return { ...p, last: staged === undefined ? table : Math.max(staged, table ?? -1), startFrom };
      }),
      { startFrom: kafka.startFrom, onPositionLost: kafka.onPositionLost, watermarks: (p) => source.watermarks(p) },
    );
    for (const m of moved) {
      this.metrics.positionLost(m.topic, m.skipped);
      this.#log.warn(`recorded position lost; resuming as kafka.on_position_lost: ${kafka.onPositionLost} says`, {
        topic: m.topic,
        partition: m.partition,
        recordedVersion: m.next - 1,
        logStart: m.low,
        highWatermark: m.high,
        resumeAt: m.resumeAt,
        skipped: skippedRange(m),
        skippedOffsets: m.skipped,
        detail: describeLost(m),
      });
    }
    // start_from latest with nothing recorded: record where reading starts now, so that a
    // restart before the partition's first commit resumes here rather than at a later end.
    const unrecorded = (key: string) => !recorded.has(key) && !this.#recovered.has(key);
    const fresh = kafka.startFrom === 'latest' ? starts.filter((s) => s.offset >= 0 && unrecorded(partitionKey(s.topic, s.partition))) : [];
    if (fresh.length > 0) {
      const ids = await target.recordStarts(
        fresh.map((s) => ({ appId: txnAppId(kafka.groupId, s.topic, s.partition), version: s.offset - 1 })),
        this.config.concurrency.retryAttempts + 1,
      );
      const partitions = fresh.map((s) => `${s.topic}[${s.partition}]@${s.offset}`).join(',');
      this.#log.info('recorded where partitions start (start_from latest)', { partitions, recorded: ids.length });
    }
    // A position moved forward still continues the recorded one: the stage may commit past the
    // skip. One moved back (a recreated log) replaces it: the first commit records the new one.
    const continues = new Map(moved.filter((m) => !m.recreated).map((m) => [partitionKey(m.topic, m.partition), m.next - 1]));
    const replaces = new Map(moved.filter((m) => m.recreated).map((m) => [partitionKey(m.topic, m.partition), m.next - 1]));
    this.#stage?.assigned(
      starts.map((s) => ({
        topicIndex: this.#topics.indexOf(s.topic),
        partition: s.partition,
        nextOffset: s.offset >= 0 ? s.offset : undefined,
        continuesAfter: continues.get(partitionKey(s.topic, s.partition)),
        replaces: replaces.get(partitionKey(s.topic, s.partition)),
      })),
    );
    this.#caughtUp?.assigned(starts);
    return starts;
  }

  /** Stages again what a previous run spilled and did not commit. */
  async #recoverStaging(stage: Stage): Promise<StagingRecovery> {
    const parts = stage.stagingPartitions();
    const topicOf = (i: number) => this.#topics.nameAt(i);
    const recorded = await this.#recordedPositions(parts.map((p) => ({ topic: topicOf(p.topicIndex), partition: p.partition })));
    const recovery = await stage.recover(
      parts.map((p) => ({ ...p, lastOffset: recorded.get(partitionKey(topicOf(p.topicIndex), p.partition)) ?? -1 })),
    );
    for (const p of recovery.positions) this.#recovered.set(partitionKey(topicOf(p.topicIndex), p.partition), p.lastOffset);
    if (recovery.generations > 0 || recovery.committedFiles > 0 || recovery.discardedFiles > 0) {
      this.#log.info('staging recovered', {
        generations: recovery.generations,
        rows: recovery.rows,
        bytes: recovery.bytes,
        resumeAfter: recovery.positions.map((p) => `${topicOf(p.topicIndex)}[${p.partition}]@${p.lastOffset}`).join(','),
        committedFilesRemoved: recovery.committedFiles,
        discardedFiles: recovery.discardedFiles,
      });
    }
    for (const reason of recovery.reasons) this.#log.warn('staged data dropped; its range is read again from Kafka', { reason });
    this.metrics.staged(stage.stagedRows, 0, { rows: stage.spilledRows, bytes: stage.spilledBytes });
    return recovery;
  }

  /** The last offsets the table records for these partitions, by partition key. */
  async #recordedPositions(parts: readonly PartitionRef[]): Promise<Map<string, number>> {
    const target = this.#target;
    const out = new Map<string, number>();
    if (!target || parts.length === 0) return out;
    const ids = parts.map((p) => txnAppId(this.config.kafka.groupId, p.topic, p.partition));
    const recorded = await target.txnVersions(ids);
    parts.forEach((p, i) => {
      const version = recorded.get(ids[i] as string);
      if (version !== undefined) out.set(partitionKey(p.topic, p.partition), version);
    });
    return out;
  }

  async #onRevoke(parts: readonly PartitionRef[]): Promise<void> {
    // Commit what is staged while these partitions are still ours: the new owner then starts
    // after it (the Delta log tells it where). Then, before any other flush can run, give them
    // up: their rows staged since (in memory or spilled) are never committed by us, and their
    // messages still in flight are not staged; the new owner reads them again. If the flush
    // fails, nothing was committed and the new owner reads everything from the table's positions.
    const flusher = this.#flusher;
    const stage = this.#stage;
    if (!flusher || !stage) return;
    if (this.#stopRequested || !this.#running) {
      // Leaving the group at the stop (or after an error), after the last flush or persist: what
      // is staged stays in the staging directory for the next start, whose recovery checks it
      // against the table.
      for (const p of parts) this.#recovered.delete(partitionKey(p.topic, p.partition));
      return;
    }
    const lost = parts.map((p) => ({ topicIndex: this.#topics.indexOf(p.topic), partition: p.partition, lastOffset: -1 }));
    // The batch being staged belongs in this flush (or, landing after it, would be dropped):
    // let it land first. A staging failure stops the loop, which reports it.
    await this.#intake?.settle().catch(() => {});
    const flushed = flusher.flush();
    const given = flusher.exclusive(async () => {
      for (const p of parts) this.#recovered.delete(partitionKey(p.topic, p.partition));
      await stage.forgetPartitions(lost);
    });
    try {
      await flushed;
    } catch (error) {
      this.#log.warn('flush on revoke failed; the new owner re-reads from the table positions', { error });
    }
    await given;
  }

  async #run(): Promise<RunSummary> {
    const source = this.#source as KafkaSource;
    const stage = this.#stage as Stage;
    const flusher = this.#flusher as Flusher;
    const backpressure = new Backpressure({
      source,
      stage,
      requestFlush: () => {
        if (flusher.requestFlush()) this.#schedule.flushed();
      },
      maxDiskBytes: this.config.buffer.maxDiskBytes,
      log: this.#log,
      metrics: this.metrics,
    });
    const intake = new Intake({
      stage,
      topics: this.#topics.names,
      topicIndex: this.#topics.index,
      // Keys always: a dead letter carries its message's raw key, whichever sink it goes to.
      pack: { keys: true, headers: headersRead(this.config) },
      metrics: this.metrics,
      log: this.#log,
      deadLetterTally: this.#deadLetterTally,
      onDeadLetter: (r, topic) => {
        const { topicIndex: _index, ...rest } = r;
        this.#events.emit('deadLetter', { ...rest, topic });
      },
      onSpillBlocked: (reason) => backpressure.noteSpillBlocked(reason),
    });
    this.#intake = intake;
    try {
      while (!this.#stopRequested) {
        const messages = await source.consume();
        if (messages.length > 0) {
          // Counted as read when consumed: the loop ends only after settling what is in flight.
          this.#caughtUp?.consumed(messages);
          await intake.submit(messages);
        }
        flusher.throwIfFailed();
        const trigger = this.#schedule.due(stage.stagedRows);
        if (trigger && flusher.requestFlush()) {
          this.#schedule.flushed();
          this.#log.debug('flush requested', { trigger });
        }
        await backpressure.apply();
        if (this.#caughtUp && (await this.#caughtUp.isCaughtUp(source.assignedPartitions()))) {
          this.#log.info('caught up with the high watermarks seen at start');
          break;
        }
      }
      await intake.settle();
      await source.settled();
      await this.#finish(stage, flusher);
      return {
        messages: intake.messages,
        rowsWritten: flusher.totals.rowsWritten,
        rowsDeduplicated: flusher.totals.rowsDeduplicated,
        deadLetters: flusher.totals.deadLetters,
        flushes: flusher.totals.flushes,
        seconds: (performance.now() - this.#startedAt) / 1000,
      };
    } catch (error) {
      const err = error instanceof KafkaDeltaError ? error : new InternalError('INTERNAL', error instanceof Error ? error.message : String(error), { cause: error });
      this.#log.error('pipeline stopped on an error; nothing after the last commit is lost', { error: err });
      if (this.#events.listenerCount('error') > 0) this.#events.emit('error', err);
      throw err;
    } finally {
      this.#running = false;
      // A batch still being staged (after an error) must not outlive the stage's last use.
      await intake.settle().catch(() => {});
      // A compaction in progress is one commit: let it land (or the deadline pass; its files are then orphans for vacuum).
      await this.#withinDeadline(this.#maintenance?.stop() ?? Promise.resolve());
      await source.disconnect();
      await this.#deadLetters?.close();
      // The staging directory is free for the next pipeline (a restart within this process).
      stage.close();
      // Peak resident memory of the process, for operators sizing buffer.max_memory.
      this.#log.info('pipeline stopped', { messages: intake.messages, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) });
      this.#nativeLogs?.stop();
      this.#nativeLogs = undefined;
    }
  }

  /**
   * The end of a run: commit what is staged, unless a flush schedule is configured and not due
   * (then persist it for the next start); give up waiting at the stop deadline, after persisting.
   */
  async #finish(stage: Stage, flusher: Flusher): Promise<void> {
    const scheduled = this.config.batch.schedule !== undefined && !this.#untilCaughtUp;
    if (scheduled && this.#schedule.due(stage.stagedRows) !== 'schedule') {
      await this.#withinDeadline(flusher.settle());
      const persisted = await stage.persist();
      this.#log.info('stopping before the scheduled flush: staged rows kept on disk for the next start', {
        persisted,
        stagedRows: stage.stagedRows,
        next: this.#schedule.nextScheduledAt()?.toISOString(),
      });
      return;
    }
    const done = await this.#withinDeadline(flusher.flush().then(() => flusher.settle()));
    if (!done) {
      const persisted = await stage.persist();
      this.#log.warn('stop grace period over before the flush committed; exiting without it', {
        persisted,
        note: 'uncommitted rows are re-read from the staging directory or Kafka at the next start',
      });
    }
  }

  /** Waits for `work` until the stop deadline; returns whether it finished (rethrows its error). */
  async #withinDeadline(work: Promise<unknown>): Promise<boolean> {
    const remaining = this.#stopDeadline - performance.now();
    if (!Number.isFinite(remaining)) {
      await work;
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, remaining));
    });
    try {
      return await Promise.race([work.then(() => true as const), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether the consume loop is running. */
  get running(): boolean {
    return this.#running;
  }

  /** Whether the pipeline is running and reaches its Kafka brokers (what `/readyz` reports). */
  get ready(): boolean {
    return this.#running && (this.#source?.health.reachable ?? false);
  }
}
