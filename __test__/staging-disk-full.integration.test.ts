/**
 * A full staging disk (issue #15): `buffer.staging_dir` on a 4 MiB tmpfs that another file
 * fills up while the pipeline spills. The pipeline pauses consumption, keeps the rows it could
 * not spill in memory, flushes early, retries the spill, and resumes when the space comes back;
 * it never exits for it and the table ends exact. Mounting a tmpfs needs root (CI runs as root);
 * without it the test fails saying so, it does not skip.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { countLines, sleep } from './helpers/faults.js';

const DISK_FULL = /"msg":"staging disk full: rows kept in memory/;
const ROOM_AGAIN = /"msg":"staging disk has room again/;

/** Mounts a tmpfs of `size` at a new directory; returns it and how to unmount it. */
function smallDisk(size: string): { dir: string; unmount: () => void } {
  const dir = tempDir('kdr-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`this test mounts a tmpfs as the staging disk and needs root (mount -t tmpfs): ${String(error)}`);
  }
  return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
}

/** A staging dir on the small disk, a table, and a topic with `count` events over two days. */
async function workload(diskDir: string, prefix: string, count: number) {
  const staging = join(diskDir, 'staging');
  mkdirSync(staging);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName(prefix);
  await createTopic(BROKERS, topic, 2);
  const days = ['2026-11-22', '2026-11-23'];
  const ids = Array.from({ length: count }, (_, i) => `e${i}`);
  await produceMessages(
    BROKERS,
    topic,
    ids.map((id, i) => ({ value: JSON.stringify({ id, seq: i, amount: i / 2, note: `n${i % 97}`, date_col: days[i % 2] }) })),
  );
  return { staging, dir, table, topic, ids };
}

test.serial('[integration] a full staging disk pauses consumption and retries the spill; nothing is lost, the pipeline never exits, and it resumes when space returns', async (t) => {
  t.timeout(5 * 60_000);
  const disk = smallDisk('4m');
  t.teardown(disk.unmount);
  // Another tenant of the disk takes all but ~600 KiB of it.
  const filler = join(disk.dir, 'filler');
  writeFileSync(filler, Buffer.alloc(3.4 * 1024 * 1024));
  const { staging, dir, table, topic, ids } = await workload(disk.dir, 'kdr_disk_full', 40_000);
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      // Flushes far apart: only spilling keeps memory in bounds, so the disk fills.
      batchInterval: 30,
      batchSize: 1_000_000,
      extra: { kafka: { max_poll_records: 1000 }, buffer: { staging_dir: staging, max_memory: '256KiB' } },
    }),
  );

  const cli = startCli(['--config', configPath, '--until-caught-up', '--logging.level=DEBUG']);
  await cli.waitFor(DISK_FULL, 120_000);
  // The space comes back.
  rmSync(filler);
  const code = await cli.exited;
  const out = cli.output();
  t.log(`${countLines(out, DISK_FULL)} disk-full episodes, ${countLines(out, ROOM_AGAIN)} recoveries, ${countLines(out, /"msg":"flush committed"/)} commits`);
  t.is(code, 0, out.slice(-4000));
  t.true(countLines(out, ROOM_AGAIN) >= 1, 'spilling resumed');
  t.false(/"level":"(error|fatal)"/i.test(out), 'a full staging disk is not an error');

  const rows = readTable(table).rows;
  t.deepEqual(rows.map((r) => String(r.id)).sort(), [...ids].sort(), 'every message exactly once');
});

test.serial('[integration] a restart on a staging disk with no room left recovers its spill files, commits them and exits 0 with the table exact', async (t) => {
  t.timeout(5 * 60_000);
  const disk = smallDisk('4m');
  t.teardown(disk.unmount);
  const { staging, dir, table, topic, ids } = await workload(disk.dir, 'kdr_disk_full_start', 20_000);
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      batchInterval: 3600,
      batchSize: 1_000_000,
      // The killed run's group membership ends after its session timeout: short, so the
      // restart is assigned the partitions within seconds.
      extra: {
        kafka: { max_poll_records: 1000, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } },
        buffer: { staging_dir: staging, max_memory: '256KiB' },
      },
    }),
  );

  // A first run spills and is killed before any commit.
  const started = Date.now();
  const first = startCli(['--config', configPath, '--logging.level=DEBUG']);
  await first.waitFor(/"msg":"staged rows spilled to disk"/, 120_000);
  t.log(`first spill ${((Date.now() - started) / 1000).toFixed(1)} s after the start`);
  await sleep(1000);
  first.child.kill('SIGKILL');
  await first.exited;
  // Then something else takes every byte left.
  try {
    writeFileSync(join(disk.dir, 'filler'), Buffer.alloc(8 * 1024 * 1024));
  } catch (error) {
    t.is((error as NodeJS.ErrnoException).code, 'ENOSPC');
  }

  const restarted = Date.now();
  const second = startCli(['--config', configPath, '--until-caught-up']);
  const code = await second.exited;
  const out = second.output();
  t.log(`the restart on the full disk took ${((Date.now() - restarted) / 1000).toFixed(1)} s`);
  t.is(code, 0, out.slice(-4000));
  t.regex(out, /"msg":"staging recovered","generations":[1-9]/, "spill files were recovered from the full disk");
  const rows = readTable(table).rows;
  t.deepEqual(rows.map((r) => String(r.id)).sort(), [...ids].sort(), 'every message exactly once');
});
