"""Lesson 11: watch what matters. When the retry set grows past its threshold the chat webhook hears about
it exactly once, however often the check runs, until the set shrinks and grows again."""

from __future__ import annotations

from scenarios.shop import jobs_split
from scenarios.shop.monitoring import RetryAlarm, stats
from scenarios.shop.orders import create_product, create_user, save_order


def test_a_growing_retry_set_posts_one_alert(shop_world):
    world = shop_world
    from scenarios.shop import reset_data

    reset_data()
    user, product = create_user(), create_product()
    world.services.behaviours["payments"].crash = True
    with world.engine.activate():
        for _ in range(4):
            world.engine.enqueue(jobs_split.complete_order, save_order(user, product))
        for _ in range(4):
            world.engine.step()
    alarm = RetryAlarm(threshold=3)
    posted = [alarm.check(world.engine) for _ in range(5)]
    assert posted == [True, False, False, False, False]
    messages = world.services.chat.records()
    assert len(messages) == 1 and "4 jobs" in str(messages[0])
    assert stats(world.engine)["retries"] == 4
