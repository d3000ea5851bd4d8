-- Run once by the postgres image on an empty data volume: the warehouse and the
-- webhook event store get a database of their own, beside Dagster's.
CREATE DATABASE salesloft;
