-- Minimal stand-ins for tables that the seed documents reference but that live
-- elsewhere in ATİS (the Laravel app owns them). Created only where absent: on an
-- existing ATİS database the real tables are kept exactly as they are.

-- +goose Up
CREATE TABLE IF NOT EXISTS users (id BIGSERIAL PRIMARY KEY);
CREATE TABLE IF NOT EXISTS institutions (id BIGSERIAL PRIMARY KEY);
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (id UUID PRIMARY KEY);
CREATE SCHEMA IF NOT EXISTS platform;
