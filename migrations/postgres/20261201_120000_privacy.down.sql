DROP FUNCTION IF EXISTS apexops.request_privacy(text, text, text, text);
DROP FUNCTION IF EXISTS apexops.privacy_mask(text);
DROP TABLE IF EXISTS apexops.privacy_requests;
