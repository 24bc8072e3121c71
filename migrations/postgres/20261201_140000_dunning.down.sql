DROP TABLE IF EXISTS apexops.dunning_transitions;
DROP TABLE IF EXISTS apexops.dunning_cases;
