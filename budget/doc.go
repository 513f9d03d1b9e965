// Package budget paces a market-data provider's requests with one token bucket in PostgreSQL
// (table public.provider_budget), shared by every process on the database.
//
// # Why in the database
//
// A provider's plan limits the deployment, not a process: Alpaca's free plan allows 200
// requests a minute whatever number of `backfill serve` replicas send them. An in-process
// limiter per replica lets n replicas send n times the plan and collect 429s. The database is
// already the one thing every replica shares, so the bucket lives in one row of it:
//
//   - one budget for every replica, whatever their number, with no leader to elect and no
//     other broker (the design's "one binary, one Postgres");
//   - it survives restarts: a replica that restarts does not start with a full bucket of its
//     own, and a pause the provider asked for (Retry-After) holds for every replica;
//   - requests are served in the order the row lock hands the row out, whichever process they
//     come from, so replicas share the budget fairly.
//
// # What it costs
//
// [Budget.Wait] runs one short UPDATE of that one row per provider request (take.sql). The
// row lock serialises the updates, a fraction of a millisecond each: many thousands a second,
// far above provider rates of a few requests a second. A request that must wait books its
// token at once (tokens go negative) and sleeps in its process; it does not hold a connection
// or a lock meanwhile, and it is not polled.
//
// # The bucket
//
// The row's rate is PerMinute × Pace / 60 tokens a second, and it holds at most Burst tokens,
// so any window of t seconds grants at most Burst + rate × t requests. [Config] refuses a
// Burst and Pace for which a 60-second window could hold more than the plan (Burst +
// Pace × PerMinute > PerMinute); the default pace of 0.95 keeps a margin for the provider's
// own window accounting and clock skew. Every process writes its rate and burst when it
// starts ([New]): with different configurations the last one started wins, and says so.
//
// [Budget.Pause] (a 429's Retry-After, an X-RateLimit-Reset) holds every request back until
// the given instant, in every process: nothing is sent and nothing accrues before it, so after
// the pause requests resume at the budget's pace, not all at once. Requests already booked and
// sleeping in this process are held back too; those sleeping in other processes learn of the
// pause only when they next ask, and may meet the provider's 429 once more.
//
// # Clock
//
// Every statement takes the clock as a parameter ([Config.Now]); nil means the database's
// now(), one clock for every replica. With an injected clock (tests, time-scaled benchmarks)
// Wait waits until that clock reaches the send time, looking at it every 20 ms at most,
// rather than sleeping the wall-clock duration.
//
// # Failures
//
// When the database cannot be reached, Wait returns the error wrapped and the caller's
// provider request fails before it is sent, retryably (marketdata classifies a limiter's
// error as retryable); no token was taken unless the connection broke after the commit. A
// Pause that cannot be written is logged and holds in this process only. When the context ends
// while Wait sleeps, Wait returns the context's error and the booked token is not given back:
// returning it would need a second statement and could let a later request overtake the
// schedule; the cost is at most one unused request per abandoned wait.
package budget
