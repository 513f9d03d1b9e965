-- `backfill bench provider`: the default window of each timeframe, in days.
SELECT timeframe, default_window_days FROM public.timeframe_settings
