import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from './domain/errors.ts';
import { describeConfig, loadConfig } from './config.ts';

const problemsOf = (f: () => unknown): string[] => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof DomainError);
    assert.equal(e.code, 'CONFIG.INVALID');
    return e.details.problems as string[];
  }
  assert.fail('expected CONFIG.INVALID');
};

describe('loadConfig', () => {
  it('has working defaults: embedded SQLite and in-process queue under ./var', () => {
    const c = loadConfig({ env: {}, cwd: '/srv/app' });
    assert.equal(c.role, 'all');
    assert.equal(c.http.port, 8080);
    assert.deepEqual(c.store, {
      kind: 'sqlite',
      sqlitePath: '/srv/app/var/mslesion.db',
      postgresSchema: 'mslesion',
    });
    assert.equal(c.queue.kind, 'in-process');
    assert.equal(c.artifacts.dir, '/srv/app/var/artifacts');
    assert.equal(c.pacs, undefined);
    assert.equal(c.worker.maxAttempts, 3);
  });

  it('layers defaults < file < environment < command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-cfg-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(
        file,
        JSON.stringify({
          http: { port: 9000, host: '127.0.0.1' },
          worker: { concurrency: 4 },
          pacs: { dicomWebUrl: 'http://pacs:8042/dicom-web/' },
        }),
      );
      const c = loadConfig({
        file,
        cwd: dir,
        env: {
          MSLESION_PORT: '9100',
          MSLESION_PACS_USERNAME: 'u',
          MSLESION_PACS_PASSWORD: 'p',
          MSLESION_DATA_DIR: 'data',
        },
        overrides: { 'worker.concurrency': 8 },
      });
      assert.equal(c.http.port, 9100);
      assert.equal(c.http.host, '127.0.0.1');
      assert.equal(c.worker.concurrency, 8);
      assert.deepEqual(c.pacs, {
        dicomWebUrl: 'http://pacs:8042/dicom-web',
        username: 'u',
        password: 'p',
        timeoutMs: 60_000,
      });
      assert.equal(c.store.sqlitePath, join(dir, 'data', 'mslesion.db'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists every problem at once', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {
          MSLESION_PORT: '70000',
          MSLESION_STORE: 'postgres',
          MSLESION_QUEUE: 'bullmq',
          MSLESION_REDIS_URL: 'http://not-redis',
          MSLESION_VALIDATE_RESPONSES: 'maybe',
          MSLESION_PACS_PASSWORD: 'secret-only',
          MSLESION_LOG_LEVEL: 'loud',
        },
      }),
    );
    assert.equal(problems.length, 7, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('http.port (env MSLESION_PORT)')));
    assert.ok(problems.some((p) => p.includes('MSLESION_DATABASE_URL) is required')));
    assert.ok(
      problems.some((p) =>
        p.startsWith('queue.redisUrl (env MSLESION_REDIS_URL): must be a redis/rediss URL'),
      ),
    );
    assert.ok(problems.some((p) => p.includes('MSLESION_REDIS_URL) is required')));
    assert.ok(problems.some((p) => p.startsWith('http.validateResponses')));
    assert.ok(problems.some((p) => p.includes('pacs.dicomWebUrl (MSLESION_PACS_URL) is required')));
    assert.ok(problems.some((p) => p.startsWith('log.level')));
    assert.ok(!problems.join(' ').includes('secret-only'), 'secrets are never echoed');
  });

  it('rejects unknown settings and unreadable files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-cfg-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ http: { prot: 1 }, nonsense: true }));
      assert.deepEqual(
        problemsOf(() => loadConfig({ env: {}, file })),
        [`config file ${file}: unknown setting http.prot`, `config file ${file}: unknown setting nonsense`],
      );
      writeFileSync(file, '{ not json');
      assert.match(problemsOf(() => loadConfig({ env: {}, file }))[0], /^config file .*c\.json: /);
      assert.equal(problemsOf(() => loadConfig({ env: {}, file: join(dir, 'missing.json') })).length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('masks secrets when described', () => {
    const c = loadConfig({
      env: {
        MSLESION_STORE: 'postgres',
        MSLESION_DATABASE_URL: 'postgres://svc:db-secret@db:5432/mslesion',
        MSLESION_QUEUE: 'bullmq',
        MSLESION_REDIS_URL: 'redis://:redis-secret@cache:6379/0',
        MSLESION_PACS_URL: 'https://pacs.example/dicom-web',
        MSLESION_PACS_USERNAME: 'svc',
        MSLESION_PACS_PASSWORD: 'pacs-secret',
      },
    });
    const text = JSON.stringify(describeConfig(c));
    for (const s of ['db-secret', 'redis-secret', 'pacs-secret']) assert.ok(!text.includes(s), s);
    assert.match(text, /postgres:\/\/svc:\*\*\*@db:5432\/mslesion/);
    assert.equal(c.store.postgresUrl, 'postgres://svc:db-secret@db:5432/mslesion');
  });
});
