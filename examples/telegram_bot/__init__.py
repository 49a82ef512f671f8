"""The reference bot: a Telegram bot (aiogram 3) that sells product videos through the worker.

``python -m examples.telegram_bot`` runs it (see README, "The bot's side"). It shows the bot's
half of the contract: ``submit_video`` with the photo's ``file_id`` and the update id as the
idempotency key, "Make another" as ``clone`` guarded by the presser's ``user_id``, every callback
query answered, and every typed refusal turned into a sentence in the user's language.
"""
