import { describe, expect, test } from 'vitest';
import { createLogger, isoTime, type Level, type LogControl } from '../../src/node/logs/log.js';

describe('isoTime', () => {
  test('is Date#toISOString, to the millisecond, across years, months, leap days and midnight', () => {
    const samples = [0, 951_782_400_000, 951_868_799_999, 1_709_164_800_123, 4_102_444_799_999, Date.UTC(2026, 10, 25, 21, 9, 5, 7)];
    // and a spread of instants from 1970 to 2100
    for (let i = 0; i < 2000; i++) samples.push(Math.floor((i / 2000) * 4_102_444_800_000) + i);
    for (const ms of samples) expect(isoTime(ms), String(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('createLogger', () => {
  test('prefixes every line of a message with the time, level and scope, and honours the level', () => {
    const lines: [Level, string][] = [];
    const control: LogControl = { level: 'info', sink: { write: (level, line) => lines.push([level, line]) } };
    const log = createLogger('node@host', control);
    log.debug('not shown');
    log.info('two\nlines %d', 2);
    control.level = 'trace';
    log.child('node@host/w0').trace('shown');
    expect(lines.map(([level]) => level)).toEqual(['info', 'trace']);
    const [info, trace] = lines.map(([, line]) => line);
    expect(info).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info \[node@host\] two\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info \[node@host\] lines 2$/);
    expect(trace).toMatch(/ trace \[node@host\/w0\] shown$/);
  });
});

describe('a sink that fails (issue 10, item 7)', () => {
  test('never throws into the caller (an app\'s log.debug on a full disk); the lost lines are counted', () => {
    const control: LogControl = {
      level: 'debug',
      sink: {
        write() {
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      },
    };
    const log = createLogger('app', control).child('crossbar');
    expect(() => log.debug('one')).not.toThrow();
    expect(() => log.error('two')).not.toThrow();
    expect(control.dropped).toBe(2);
  });
});
