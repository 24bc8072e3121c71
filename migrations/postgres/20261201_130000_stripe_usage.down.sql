-- Reverting forgets what was reported to Stripe: a later sync would then
-- report the same days again under the same identifiers (Stripe refuses
-- those within its identifier window; past it they would bill twice).
DROP TABLE IF EXISTS apexops.stripe_usage_decreases;
DROP TABLE IF EXISTS apexops.stripe_usage_events;
