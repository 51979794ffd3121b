"""The TradingView alert messages a user pastes into an alert for one recorder (pure).

Placeholders TradingView fills in as numbers (`{{close}}`, `{{strategy.order.price}}` …) stay
unquoted, so the rendered message is JSON with numbers where the gateway expects them. Each
message carries an `id` that differs between alerts but not between TradingView's resends of one
alert, so the gateway stores a resent alert once (docs/contract.md §2).
"""

from __future__ import annotations

import json

HOW_TO = (
    "In TradingView, open Create Alert, tick Webhook URL under Notifications and paste the "
    "webhook URL. For an indicator or drawing alert, paste the indicator template as the "
    'Message and set "action" to buy, sell or close for that alert (one alert per action), '
    'and start "id" with the same word: the id tells the gateway a resent alert from a new '
    "one, so two alerts must never send the same id. "
    "For a Pine strategy, make the alert on the strategy and paste the strategy template "
    "unchanged: TradingView fills in the order and the target position, and the recorder "
    "follows the strategy's position. To send the stop and target from the chart (a Pine plot), "
    'use the levels template: rename "Stop" and "Target" to your plots\' titles. The update '
    "template moves the open position's stop without trading; make it a separate alert. "
    "Keep the webhook URL secret; rotate the token if it leaks."
)


def alert_id(action: str) -> str:
    """An indicator alert's id: its action, the chart and the second it fired. The action is
    part of it because a close and a new entry may fire on the same bar in the same second."""
    return f"{action}-{{{{ticker}}}}-{{{{interval}}}}-{{{{timenow}}}}"


def indicator_template(recorder_name: str, action: str = "buy") -> str:
    return (
        f'{{"recorder":{json.dumps(recorder_name)},"action":{json.dumps(action)},'
        '"ticker":"{{ticker}}","price":{{close}},"time":"{{timenow}}",'
        f'"id":{json.dumps(alert_id(action))}}}'
    )


def strategy_template(recorder_name: str) -> str:
    """The Pine strategy message of docs/outside/tradingview.md A.6."""
    return (
        f'{{"recorder":{json.dumps(recorder_name)},"action":"{{{{strategy.order.action}}}}",'
        '"ticker":"{{ticker}}","price":{{strategy.order.price}},'
        '"contracts":{{strategy.order.contracts}},"position_size":{{strategy.position_size}},'
        '"market_position":"{{strategy.market_position}}",'
        # The order's id alone repeats ("Long" every entry): with the chart and the second it is
        # one alert's.
        '"id":"{{ticker}}-{{strategy.order.id}}-{{timenow}}","time":"{{timenow}}"}'
    )


def levels_template(recorder_name: str, action: str = "buy") -> str:
    """An entry whose stop and target come from the indicator's plots (docs/contract.md §3b)."""
    return (
        f'{{"recorder":{json.dumps(recorder_name)},"action":{json.dumps(action)},'
        '"ticker":"{{ticker}}","price":{{close}},'
        '"sl_price":{{plot("Stop")}},"tp_price":{{plot("Target")}},"time":"{{timenow}}",'
        f'"id":{json.dumps(alert_id(action))}}}'
    )


def update_template(recorder_name: str) -> str:
    """Move the open position's stop to a plot's value, without trading (§3b `update`)."""
    return (
        f'{{"recorder":{json.dumps(recorder_name)},"action":"update",'
        '"ticker":"{{ticker}}","sl_price":{{plot("Stop")}},"time":"{{timenow}}",'
        f'"id":{json.dumps(alert_id("update"))}}}'
    )
