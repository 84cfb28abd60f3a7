/** The error of class `cls` that `fn` throws; fails the test when it throws nothing or another kind. */
import { expect } from 'vitest';

export function thrown<E extends Error>(fn: () => unknown, cls: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(cls);
    return err as E;
  }
  throw new Error(`expected a ${cls.name}, nothing was thrown`);
}
