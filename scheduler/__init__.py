"""The long-lived `steward scheduler` service: leader election, jobs, and their schedule.

- leader.py: only one scheduler is active per database (PostgreSQL advisory lock, or a
  file lock next to a SQLite database); the others wait and take over.
- service.py: APScheduler 3.x with explicit job ids, coalescing, misfire grace and one
  instance per job, jobs stored by reference (module:function) with plain arguments.
- jobs.py: what each job does (nightly and intraday evaluation, dispatch, escalation,
  calendar coverage check), each safe to run twice.
"""
