"""Rules that analysts write: a CEL expression over a transaction's fields and features
(`expression`, `vocabulary`), with an action, a priority and a reason (`rule`), run over
stored decisions (`backtest`), and the JSON rules file of before as rules (`legacy`)."""
