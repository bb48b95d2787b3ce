"""Tables and aggregations, with an interactive query.

    python scripts/kafka start
    python examples/tables.py worker

"payments" holds JSON payments {"account": "a1", "amount": 12.5}; "accounts" is a
compacted topic of account holders {"name": ...}.  The app keeps per-account
totals in a RocksDB store (changelogged to payments-tables-totals-changelog), counts
payments per account, and writes updated totals to "account-totals".  A timer
prints the largest totals by querying the store inside the worker.
"""

from streams import App

app = App("payments-tables", commit_interval=1.0)

payments_topic = app.topic("payments", partitions=4)
accounts_topic = app.topic("accounts", partitions=4, config={"cleanup.policy": "compact"})
totals_topic = app.topic("account-totals", partitions=4)

payments = app.stream(payments_topic)
by_account = payments.group_by(lambda key, p: p["account"], name="by-account")
totals = by_account.aggregate(lambda: 0.0, lambda account, p, total: total + p["amount"], name="totals")
counts = by_account.count(name="payment-counts")
totals.to(totals_topic)

holders = app.table(accounts_topic, name="holders")


@app.timer(15.0)
def print_top_accounts():
    top = sorted(app.store("totals").items(), key=lambda kv: -kv[1])[:3]
    for account, total in top:
        holder = app.store("holders").get(account) or {}
        payments_made = app.store("payment-counts").get(account)
        print(f"{account} ({holder.get('name', '?')}): {total:.2f} in {payments_made} payments")


if __name__ == "__main__":
    app.main()
