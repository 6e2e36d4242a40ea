// Part 2 of the exerciser on a mount in CI (test/fuse/exercise.ts), seed 7.
import t from 'tap'
import { EXERCISE_OPS, exerciseMount } from './exercise.js'

// A long run: more than tap's default per-file limit on a loaded machine.
t.setTimeout(900_000)

t.test(`${EXERCISE_OPS} exerciser operations on a mount (seed 7), caches dropped between reopens`, (t) => exerciseMount(t, 7))
